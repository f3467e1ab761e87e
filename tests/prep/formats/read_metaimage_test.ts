// MetaImage (.mha, .mhd + .raw/.zraw): every storage variant gives the NIfTI's cached volume.
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { FileSystemStore } from "@zarrita/storage";
import { makePhantom } from "../../../prep/synthetic/phantom.ts";
import { readMetaImage } from "../../../prep/formats/read_metaimage.ts";
import {
  writeMetaImage,
  type WriteMetaImageOptions,
} from "../../../prep/synthetic/write_metaimage.ts";
import { readNifti } from "../../../prep/formats/read_nifti.ts";
import { writeNifti } from "../../../prep/formats/write_nifti.ts";
import { orientToRas } from "../../../prep/transforms/orient.ts";
import { discoverCases } from "../../../prep/pipeline/discover.ts";
import { runPrep } from "../../../prep/pipeline/run_prep.ts";
import { resolveRecipe } from "../../../prep/recipes/recipe.ts";
import { readCase } from "../../../cache/read/read_case.ts";
import { HAVE_SHARED, maxAbsDiff, SHARED } from "../../_shared.ts";
import {
  assert,
  assertClose,
  assertEquals,
  fileOrder,
  permuteAxes,
  tempDir,
} from "../../_helpers.ts";

const VARIANTS: [string, WriteMetaImageOptions][] = [
  ["local.mha", {}],
  ["raw.mhd", { dataFile: "raw.raw" }],
  ["zraw.mhd", { dataFile: "zraw.zraw", compressed: true }],
  ["zlocal.mha", { compressed: true }],
  ["msb.mha", { msb: true }],
  ["tail.mhd", { dataFile: "tail.raw", headerSize: -1 }],
  ["skip.mhd", { dataFile: "skip.raw", headerSize: 100 }],
  ["float.mha", { dtype: "float32" }],
  ["ushort.mhd", { dataFile: "ushort.raw", dtype: "int32" }],
  // A .mha may name a separate data file too, as ITK writes it.
  ["external.mha", { dataFile: "external.raw" }],
  ["externalz.mha", { dataFile: "externalz.zraw", compressed: true }],
];

async function writeVariant(
  dir: string,
  name: string,
  v: ReturnType<typeof makePhantom>,
  o: WriteMetaImageOptions,
) {
  const { header, data } = writeMetaImage(v, o);
  await Deno.writeFile(join(dir, name), header);
  if (data) await Deno.writeFile(join(dir, o.dataFile!), data);
}

Deno.test("readMetaImage() reads every storage variant with the geometry ITK gives", () => {
  const v = makePhantom({ shape: [30, 26, 14], spacingMm: [1.5, 2, 3], orientation: "LPS" });
  const ref = orientToRas(v);
  for (const [name, o] of VARIANTS) {
    const { header, data } = writeMetaImage(v, o);
    const img = readMetaImage(header, data);
    assertEquals(img.format, "metaimage", name);
    const r = orientToRas(img.volume);
    assertEquals(r.shape, ref.shape, name);
    assertClose(r.affine, ref.affine, 1e-6, name);
    assertEquals(maxAbsDiff(r.data, ref.data), 0, name);
  }
});

Deno.test("readMetaImage() converts LPS geometry: Offset and TransformMatrix map to the RAS affine", () => {
  const text = [
    "ObjectType = Image",
    "NDims = 3",
    "BinaryData = True",
    "BinaryDataByteOrderMSB = False",
    "TransformMatrix = 0 1 0 -1 0 0 0 0 1",
    "Offset = -10 20 30",
    "ElementSpacing = 0.5 0.75 2",
    "DimSize = 2 3 4",
    "ElementType = MET_SHORT",
    "ElementDataFile = LOCAL",
    "",
  ].join("\n");
  const head = new TextEncoder().encode(text);
  const bytes = new Uint8Array(head.length + 2 * 24);
  bytes.set(head);
  const img = readMetaImage(bytes);
  // File axes (x, y, z): x runs along LPS +y (RAS -y), y along LPS -x (RAS +x), z along S.
  assertClose(img.sourceGeometry.affine, [
    [0, 0.75, 0, 10],
    [-0.5, 0, 0, -20],
    [0, 0, 2, 30],
    [0, 0, 0, 1],
  ], 1e-9);
  assertEquals(img.volume.shape, [4, 3, 2]);
});

Deno.test("readMetaImage() rejects bad files with the reason", () => {
  const v = makePhantom({ shape: [10, 10, 10] });
  const { header } = writeMetaImage(v);
  const text = new TextDecoder().decode(header.subarray(0, 400));
  const swap = (from: RegExp, to: string) => {
    const t = text.replace(from, to);
    const body = header.subarray(text.indexOf("ElementDataFile = LOCAL\n") + 24);
    const h = new TextEncoder().encode(t.slice(0, t.indexOf("ElementDataFile = LOCAL\n") + 24));
    const out = new Uint8Array(h.length + body.length);
    out.set(h);
    out.set(body, h.length);
    return out;
  };
  const cases: [Uint8Array, RegExp][] = [
    [
      swap(/ElementType = \w+/, "ElementType = MET_FLOAT_MATRIX"),
      /Unsupported MetaImage ElementType "MET_FLOAT_MATRIX"/,
    ],
    [swap(/NDims = 3/, "NDims = 2"), /NDims = 2/],
    [swap(/DimSize = [\d ]+/, "DimSize = 10 10 1"), /2-D/],
    [swap(/ElementSpacing = [\d. ]+/, "ElementSpacing = 1 0 1"), /ElementSpacing 1 0 1 has a zero/],
    [header.subarray(0, header.length - 10), /promises 2000 bytes/],
    [new TextEncoder().encode("just some text\n"), /Not a MetaImage header/],
    [swap(/CompressedData = False/, "CompressedData = True"), /Corrupt or truncated compressed/],
  ];
  for (const [bytes, pattern] of cases) {
    let message = "no error";
    try {
      readMetaImage(bytes);
    } catch (e) {
      message = (e as Error).message;
    }
    assert(pattern.test(message), `"${message}" does not match ${pattern}`);
  }
});

Deno.test("the same image as NIfTI and as every MetaImage variant gives the identical cached volume", async () => {
  await using dir = await tempDir();
  const inp = join(dir.path, "in");
  await Deno.mkdir(inp);
  const ras = makePhantom({ shape: [36, 30, 16], spacingMm: [2, 2, 4], orientation: "RAS" });
  const v = permuteAxes(ras, [1, 2, 0], [true, false, true]); // stored in a rotated axis order
  await Deno.writeFile(join(inp, "ref.nii.gz"), writeNifti(v));
  for (const [name, o] of VARIANTS) await writeVariant(inp, name, v, o);
  // A .mhd whose data file is missing fails alone.
  await Deno.writeTextFile(
    join(inp, "orphan.mhd"),
    new TextDecoder().decode(writeMetaImage(v, { dataFile: "gone.raw" }).header),
  );
  const cases = await discoverCases([inp]);
  assertEquals(cases.length, VARIANTS.length + 2);
  const zraw = cases.find((c) => c.name === "zraw")!;
  assertEquals(zraw.files.map((f) => f.slice(inp.length + 1)), ["zraw.mhd", "zraw.zraw"]);
  const external = cases.find((c) => c.name === "external")!;
  assertEquals(external.files.map((f) => f.slice(inp.length + 1)), [
    "external.mha",
    "external.raw",
  ]);
  const out = join(dir.path, "cache");
  const run = await runPrep(cases, {
    out,
    dataset: "mixed",
    recipe: resolveRecipe("voco-v2"),
    storage: { dtype: "float32", compressor: "zstd", level: 3, chunk: 64 },
    workers: 2,
  });
  const failed = run.reports.filter((r) => r.status === "failed");
  assertEquals(failed.map((r) => r.case.name), ["orphan"]);
  assert(/Cannot read .*gone\.raw/.test(failed[0].error!), failed[0].error);
  const store = new FileSystemStore(out);
  const ref = await readCase(store, "/mixed/ref");
  for (const [name] of VARIANTS) {
    const c = await readCase(store, `/mixed/${name.replace(/\.\w+$/, "")}`);
    assertEquals(c.shape, ref.shape, name);
    assertClose(c.attributes.affine, ref.attributes.affine, 1e-4, name);
    assertEquals(maxAbsDiff(c.data, ref.data), 0, name);
    assertEquals((c.attributes.original as { format: string }).format, "metaimage");
  }
});

Deno.test({
  name: "the example CT written as MetaImage reads back as the NIfTI does",
  ignore: !HAVE_SHARED,
  async fn() {
    const nii = readNifti(await Deno.readFile(`${SHARED}data/ct/example_ct.nii.gz`));
    // The writers take axis 0 as the file's x: put the volume back in file order.
    const v = fileOrder(nii.volume);
    const { header } = writeMetaImage(v, { dtype: "int32" });
    const mha = readMetaImage(header);
    assertEquals(mha.sourceGeometry.shape, nii.sourceGeometry.shape);
    assertClose(mha.sourceGeometry.affine, nii.sourceGeometry.affine, 1e-6);
    assertEquals(maxAbsDiff(mha.volume.data, nii.volume.data), 0);
  },
});

Deno.test("readMetaImage() reads every scalar ElementType, 64-bit ones as float32", () => {
  const shape: [number, number, number] = [4, 3, 2];
  const base = makePhantom({ shape });
  const signed = { ...base, data: new Float32Array(24).map((_, i) => i * 5 - 60) };
  const unsigned = { ...base, data: new Float32Array(24).map((_, i) => i * 9) };
  const types = [
    ["int8", signed, "MET_CHAR"],
    ["uint8", unsigned, "MET_UCHAR"],
    ["int16", signed, "MET_SHORT"],
    ["uint16", unsigned, "MET_USHORT"],
    ["int32", signed, "MET_INT"],
    ["uint32", unsigned, "MET_UINT"],
    ["int64", signed, "MET_LONG_LONG"],
    ["uint64", unsigned, "MET_ULONG_LONG"],
    ["float32", signed, "MET_FLOAT"],
    ["float64", signed, "MET_DOUBLE"],
  ] as const;
  for (const [dtype, v, met] of types) {
    for (const msb of [false, true]) {
      const { header } = writeMetaImage(v, { dtype, msb });
      assert(new TextDecoder().decode(header).includes(`ElementType = ${met}\n`), met);
      const img = readMetaImage(header);
      assertEquals(img.sourceDtype, dtype, met);
      assertEquals(Array.from(fileOrder(img.volume).data), Array.from(v.data), `${met} ${msb}`);
    }
  }
});

Deno.test("a .mha naming a separate data file is read as a .mhd is, and keeps the data-file rules", async () => {
  await using dir = await tempDir();
  const v = makePhantom({ shape: [12, 10, 8] });
  const write = async (name: string, data: string, bytes = true) => {
    const w = writeMetaImage(v, { dataFile: data });
    await Deno.writeFile(join(dir.path, name), w.header);
    if (bytes) await Deno.writeFile(join(dir.path, data), w.data!);
  };
  await write("ok.mha", "ok.raw");
  await write("orphan.mha", "missing.raw", false);
  await write("self.mha", "self.mha", false);
  await Deno.writeFile(join(dir.path, "other.nii.gz"), writeNifti(v));
  await write("steal.mha", "other.nii.gz", false);
  const cases = await discoverCases([dir.path]);
  const byName = new Map(cases.map((c) => [c.name, c]));
  assertEquals(byName.get("ok")!.files.map((f) => f.slice(dir.path.length + 1)), [
    "ok.mha",
    "ok.raw",
  ]);
  assert(/ElementDataFile names the header itself/.test(byName.get("self")!.error!));
  assert(/other\.nii\.gz, an image of its own \(nifti\)/.test(byName.get("steal")!.error!));
  assertEquals(byName.get("other")!.error, undefined);
  const run = await runPrep(cases, {
    out: join(dir.path, "cache"),
    dataset: "d",
    recipe: resolveRecipe("voco-v2"),
    storage: { dtype: "float32", compressor: "zstd", level: 3, chunk: 64 },
    workers: 1,
  });
  const status = Object.fromEntries(run.reports.map((r) => [r.case.name, r.status]));
  assertEquals(status, {
    ok: "written",
    orphan: "failed",
    other: "written",
    self: "failed",
    steal: "failed",
  });
  const orphan = run.reports.find((r) => r.case.name === "orphan")!;
  assert(/Cannot read .*missing\.raw: no such file/.test(orphan.error!), orphan.error);
  // Given the header alone, the reader names the file it needs.
  const { header } = writeMetaImage(v, { dataFile: "ok.raw" });
  let message = "";
  try {
    readMetaImage(header);
  } catch (e) {
    message = (e as Error).message;
  }
  assert(/ElementDataFile names "ok\.raw": its bytes are needed/.test(message), message);
});

/** A `.mha` of a small phantom whose header lines are changed by `edit`. */
function editedMha(edit: (text: string) => string, options: WriteMetaImageOptions = {}) {
  const { header } = writeMetaImage(makePhantom({ shape: [10, 10, 10] }), options);
  const at = header.indexOf(0x0a, new TextDecoder().decode(header).indexOf("ElementDataFile")) + 1;
  const text = edit(new TextDecoder().decode(header.subarray(0, at)));
  const h = new TextEncoder().encode(text);
  const out = new Uint8Array(h.length + header.length - at);
  out.set(h);
  out.set(header.subarray(at), h.length);
  return out;
}

Deno.test("readMetaImage() rejects a bad HeaderSize, byte order, compression flag or TransformMatrix", () => {
  const cases: [(t: string) => string, RegExp][] = [
    [(t) => `HeaderSize = -5\n${t}`, /HeaderSize = "-5" is not a byte count/],
    [(t) => `HeaderSize = abc\n${t}`, /HeaderSize = "abc" is not a byte count/],
    [
      (t) => t.replace(/BinaryDataByteOrderMSB = \w+/, "BinaryDataByteOrderMSB = Maybe"),
      /BinaryDataByteOrderMSB = "Maybe" is not True or False/,
    ],
    [
      (t) => t.replace(/CompressedData = \w+/, "CompressedData = Perhaps"),
      /CompressedData = "Perhaps" is not True or False/,
    ],
    [
      (t) => t.replace(/TransformMatrix = [-\d. ]+/, "TransformMatrix = 0 0 0 0 0 0 0 0 0"),
      /TransformMatrix 0 0 0 0 0 0 0 0 0\): voxel spacing along axis 0 is zero/,
    ],
    [
      (t) => t.replace(/TransformMatrix = [-\d. ]+/, "TransformMatrix = 1 0 0 1 0 0 0 0 1"),
      /affine is singular/,
    ],
    [
      (t) => t.replace("ElementDataFile = LOCAL", "ElementDataFile = LIST 2D"),
      /ElementDataFile "LIST 2D" \(one file per slice\) is not supported/,
    ],
    [
      (t) => t.replace("ElementDataFile = LOCAL", "ElementDataFile = slice%03d.raw 1 10 1"),
      /one file per slice/,
    ],
    [
      (t) => t.replace(/DimSize = [\d ]+/, "DimSize = 65535 65535 65535"),
      /MetaImage header declares 65535x65535x65535 voxels/,
    ],
  ];
  for (const [edit, pattern] of cases) {
    let message = "no error";
    try {
      readMetaImage(editedMha(edit));
    } catch (e) {
      message = (e as Error).message;
    }
    assert(pattern.test(message), `"${message}" does not match ${pattern}`);
  }
});

Deno.test("readMetaImage() inflates a .zraw only up to the declared voxels and reports the rest", () => {
  const v = makePhantom({ shape: [10, 10, 10] });
  const { header, data } = writeMetaImage(v, { dataFile: "x.raw" });
  // 32 MB of zeros after the 2000 voxel bytes, zlib-compressed: a bomb of 32 KB.
  const raw = new Uint8Array(data!.length + 32 * 2 ** 20);
  raw.set(data!);
  const zheader = new TextEncoder().encode(
    new TextDecoder().decode(header).replace(/CompressedData = \w+/, "CompressedData = True"),
  );
  const img = readMetaImage(zheader, deflateSync(raw));
  assertEquals(Array.from(img.volume.data), Array.from(readMetaImage(header, data).volume.data));
  assert(
    /trailing data after the 2000 bytes.*not inflated/.test(`${img.warnings}`),
    `${img.warnings}`,
  );
  assertEquals(readMetaImage(header, data).warnings, undefined);
});
