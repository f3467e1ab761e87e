// DICOM series: every transfer syntax, geometry, rejections, discovery and MONAI parity.
import { join } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { BadInputError } from "../../../../cache/errors.ts";
import { makePhantom } from "../../../../prep/synthetic/phantom.ts";
import { writeNifti } from "../../../../prep/formats/write_nifti.ts";
import { DECODE_POOL_LIMITS, readDicomSeries } from "../../../../prep/formats/dicom/read_dicom.ts";
import {
  applyBitsStored,
  decodeFrame,
  type EncodedFrame,
  extractFrame,
  isEncodedFrame,
} from "../../../../prep/formats/dicom/dicom_codecs.ts";
import { parseDicom, sliceInfo } from "../../../../prep/formats/dicom/dicom_parse.ts";
import {
  DECODER_LIMITS,
  DecodeWorkers,
  FrameDecoderPool,
} from "../../../../prep/formats/dicom/frame_pool.ts";
import {
  newUid,
  WRITE_SYNTAXES,
  writeDicomFile,
  writeDicomSeries,
} from "../../../../prep/synthetic/write_dicom.ts";
import { orientToRas } from "../../../../prep/transforms/orient.ts";
import { discoverInputs } from "../../../../prep/pipeline/discover.ts";
import { runPrep } from "../../../../prep/pipeline/run_prep.ts";
import type { StorageOptions } from "../../../../prep/pipeline/process_case.ts";
import { resolveRecipe } from "../../../../prep/recipes/recipe.ts";
import { readCase } from "../../../../cache/read/read_case.ts";
import { listCases } from "../../../../cache/write/cache_dir.ts";
import { main as prepMain } from "../../../../tasks/prep.ts";
import type { Volume, VoxelArray } from "../../../../prep/volume.ts";
import { HAVE_SHARED, loadGolden, maxAbsDiff, SHARED } from "../../../_shared.ts";
import {
  assert,
  assertClose,
  assertEquals,
  assertRejects,
  runTask,
  tempDir,
} from "../../../_helpers.ts";

const phantom = (orientation = "LPS") =>
  makePhantom({ shape: [40, 36, 12], spacingMm: [2, 2.5, 3], orientation });

type NamedBytes = { name: string; bytes: Uint8Array };

/** Writes files into `dir`, created as needed. */
async function writeFiles(dir: string, files: readonly NamedBytes[]): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const f of files) await Deno.writeFile(join(dir, f.name), f.bytes);
}

/** The compressed frames of a JPEG 2000 phantom series. */
async function j2kFrames(): Promise<EncodedFrame[]> {
  const files = await writeDicomSeries(phantom(), { syntax: "jpeg2000" });
  return files.map((f) => {
    const ds = parseDicom(f.bytes);
    const frame = extractFrame(ds, sliceInfo(ds));
    assert(isEncodedFrame(frame));
    return frame;
  });
}

/** Storage that keeps values exact (float32), for comparisons. */
const EXACT: StorageOptions = { dtype: "float32", compressor: "blosc-zstd", level: 3, chunk: 64 };

/** Runs `fn` with the decoder pool started for any series size (the phantoms are small). */
async function withPool<T>(fn: () => Promise<T>): Promise<T> {
  const saved = DECODE_POOL_LIMITS.minPixels;
  DECODE_POOL_LIMITS.minPixels = 0;
  try {
    return await fn();
  } finally {
    DECODE_POOL_LIMITS.minPixels = saved;
  }
}

/** Both volumes in RAS: same shape, same affine, same values. */
function assertSameImage(a: Volume<VoxelArray>, b: Volume<VoxelArray>) {
  const ra = orientToRas(a), rb = orientToRas(b);
  assertEquals(ra.shape, rb.shape);
  assertClose(ra.affine, rb.affine, 1e-4);
  const d = maxAbsDiff(ra.data, rb.data);
  assert(d === 0, `max abs difference ${d}`);
}

for (const syntax of Object.keys(WRITE_SYNTAXES) as (keyof typeof WRITE_SYNTAXES)[]) {
  Deno.test(`readDicomSeries() decodes ${syntax} series, signed and unsigned, exactly`, async () => {
    const v = phantom();
    for (const pixels of ["signed", "unsigned"] as const) {
      const files = await writeDicomSeries(v, { syntax, pixels });
      for (const decodeThreads of [1, 3]) {
        const img = await withPool(() =>
          readDicomSeries(files.map((f) => f.bytes), { decodeThreads })
        );
        assertEquals(img.format, "dicom");
        assertEquals(img.sourceDtype, pixels === "signed" ? "int16" : "uint16");
        assertSameImage(img.volume, v);
      }
    }
  });
}

Deno.test("readDicomSeries() reads an Enhanced CT file (one frame per slice) in every syntax", async () => {
  const v = phantom("PIR");
  for (const syntax of Object.keys(WRITE_SYNTAXES) as (keyof typeof WRITE_SYNTAXES)[]) {
    // Compressed frames: found through the offset table, or one fragment per frame.
    const native = ["implicit", "explicit", "deflated", "big-endian"].includes(syntax);
    for (const offsetTable of native ? [true] : [true, false]) {
      const [file] = await writeDicomSeries(v, { syntax, multiFrame: true, offsetTable });
      for (const decodeThreads of [1, 2]) {
        const img = await withPool(() => readDicomSeries([file.bytes], { decodeThreads }));
        assertSameImage(img.volume, v);
      }
    }
  }
});

Deno.test("prep caches an Enhanced CT file like the same series as single frames", async () => {
  await using dir = await tempDir();
  const v = phantom();
  await writeFiles(
    join(dir.path, "in", "enhanced"),
    await writeDicomSeries(v, { multiFrame: true }),
  );
  await writeFiles(join(dir.path, "in", "classic"), await writeDicomSeries(v));
  const out = join(dir.path, "cache");
  const { code, text } = await runTask(prepMain, [join(dir.path, "in"), "--out", out, "--quiet"]);
  assertEquals(code, 0, text);
  const store = new FileSystemStore(out);
  const [a, b] = await Promise.all(
    ["/in/enhanced", "/in/classic"].map((p) => readCase(store, p as `/${string}`)),
  );
  assertEquals(a.shape, b.shape);
  assertClose(a.affine, b.affine, 1e-6);
  assertEquals(maxAbsDiff(a.data, b.data), 0);
});

Deno.test("readDicomSeries() sorts shuffled slices and places sagittal slices (PIR)", async () => {
  const v = phantom("PIR");
  const files = (await writeDicomSeries(v)).map((f) => f.bytes);
  const shuffled = [5, 0, 11, 3, 8, 1, 10, 2, 7, 4, 9, 6].map((i) => files[i]);
  assertSameImage((await readDicomSeries(shuffled)).volume, v);
});

Deno.test("readDicomSeries() applies RescaleSlope in float32", async () => {
  const v = phantom();
  const files = await writeDicomSeries(v, {
    extraElements: [{ tag: 0x00281053, vr: "DS", value: "0.5" }],
  });
  const img = await readDicomSeries(files.map((f) => f.bytes));
  assert(img.volume.data instanceof Float32Array);
  assertSameImage(img.volume, { ...v, data: v.data.map((x) => Math.round(x) * 0.5) });
});

Deno.test("readDicomSeries() switches to float32 when an intercept overflows int16", async () => {
  const v = phantom();
  // Stored values are HU + 1024; an intercept of 32000 takes the bright ones past 32767.
  const extraElements = [{ tag: 0x00281052, vr: "DS", value: "32000" }];
  const files = await writeDicomSeries(v, { pixels: "unsigned", extraElements });
  const img = await readDicomSeries(files.map((f) => f.bytes));
  assert(img.volume.data instanceof Float32Array, "float32 output");
  const shifted = { ...v, data: Float32Array.from(v.data, (x) => x + 1024 + 32000) };
  assertSameImage(img.volume, shifted);
});

Deno.test("readDicomSeries() skips a localizer mixed into the series", async () => {
  const v = phantom();
  const seriesUid = newUid();
  const files = (await writeDicomSeries(v, { seriesUid })).map((f) => f.bytes);
  const scout = await writeDicomSeries(phantom("PIR"), {
    seriesUid,
    imageType: "ORIGINAL\\PRIMARY\\LOCALIZER",
  });
  const img = await readDicomSeries([scout[0].bytes, ...files]);
  assertSameImage(img.volume, v);
});

Deno.test("readDicomSeries() rejects bad series, naming the files and the reason", async () => {
  const v = phantom();
  const files = (await writeDicomSeries(v)).map((f) => f.bytes);
  const paths = files.map((_, i) => `IM${i}.dcm`);
  const read = (f: Uint8Array[], p = paths) => readDicomSeries(f, { paths: p });
  // A missing slice: the gap names the two files around it.
  const missing = files.filter((_, i) => i !== 6);
  const e1 = await assertRejects(
    () => read(missing, paths.filter((_, i) => i !== 6)),
    /Non-uniform slice gap: 6 mm between IM\d+\.dcm and IM\d+\.dcm.*other gaps are 3 mm.*missing/,
  );
  assert(e1 instanceof BadInputError, `${e1.name}: not bad input`);
  await assertRejects(
    () => read([...files, files[4]], [...paths, "copy.dcm"]),
    /Duplicated slice.*copy\.dcm/,
  );
  const other = (await writeDicomSeries(phantom("PIR"))).map((f) => f.bytes);
  await assertRejects(
    () => read([...files, other[0]], [...paths, "odd.dcm"]),
    /Mixed orientations: .* odd\.dcm has/,
  );
  const multi = await writeDicomSeries(v, {
    extraElements: [{ tag: 0x00280008, vr: "IS", value: "2" }],
  });
  await assertRejects(() => read(multi.map((f) => f.bytes)), /multi-frame/);
  await assertRejects(() => read([files[0]]), /Only 1 slice/);
  await assertRejects(() => read([files[0], new TextEncoder().encode("hello")]), /file 1|IM1/);
  const pet = await writeDicomSeries(v, { modality: "PT" });
  await assertRejects(() => read(pet.map((f) => f.bytes)), /modality PT, not CT/);
});

Deno.test("applyBitsStored() masks unsigned and sign-extends signed values (PS3.5 8.1.1)", () => {
  const info = { rows: 1, columns: 4, bitsAllocated: 16, bitsStored: 12 };
  const u = new Uint16Array([0xf123, 0x0fff, 0x8000, 5]);
  applyBitsStored(u, { ...info, pixelRepresentation: 0 });
  assertEquals([...u], [0x123, 0xfff, 0, 5]);
  // -1000 as 12-bit two's complement without sign extension (0x0c18), and with garbage.
  const s = new Int16Array([0x0c18, 0x7c18, -1000, 2047]);
  applyBitsStored(s, { ...info, pixelRepresentation: 1 });
  assertEquals([...s], [-1000, -1000, -1000, 2047]);
  const full = new Int16Array([-30000]);
  applyBitsStored(full, { ...info, bitsStored: 16, pixelRepresentation: 1 });
  assertEquals([...full], [-30000]);
});

Deno.test("readDicomSeries() ignores the unused high bits of 12-bit pixels", async () => {
  const v = phantom();
  for (const pixels of ["signed", "unsigned"] as const) {
    const files = await writeDicomSeries(v, {
      pixels,
      extraElements: [
        { tag: 0x00280101, vr: "US", value: [12] },
        { tag: 0x00280102, vr: "US", value: [11] },
      ],
    });
    // Native pixel data ends the file: put garbage (overlay bits) above bit 11, and for
    // signed data drop the sign extension too.
    const bytes = files.map((f) => {
      const b = f.bytes.slice();
      const n = v.data.length / v.shape[2];
      const words = new DataView(b.buffer, b.length - 2 * n);
      for (let i = 0; i < n; i++) {
        const w = words.getUint16(2 * i, true);
        words.setUint16(2 * i, (w & 0x0fff) | (i % 3 === 0 ? 0xa000 : 0), true);
      }
      return b;
    });
    const img = await readDicomSeries(bytes);
    assertSameImage(img.volume, v);
  }
});

Deno.test("a corrupt compressed frame fails the series, naming the file, in any thread", async () => {
  const v = phantom();
  const j2k = (await writeDicomSeries(v, { syntax: "jpeg2000" })).map((f) => f.bytes);
  // Break the SIZ marker (FF51) that follows the codestream's start (FF4F) in IM0008.
  const b = j2k[7];
  const soc = b.findIndex((x, i) => x === 0xff && b[i + 1] === 0x4f && b[i + 2] === 0xff);
  assert(soc > 0 && b[soc + 3] === 0x51, "no J2K codestream found");
  b[soc + 3] = 0;
  const jls = (await writeDicomSeries(v, { syntax: "jpeg-ls" })).map((f) => f.bytes);
  // Garble the end of IM0006's JPEG-LS scan; CharLS throws a bare number for this.
  const c = jls[5];
  for (let i = c.length - Math.floor(c.length / 8); i < c.length - 20; i++) c[i] = (i * 7919) & 255;
  for (const decodeThreads of [1, 3]) {
    await assertRejects(
      () =>
        withPool(() =>
          readDicomSeries(j2k, { decodeThreads, paths: j2k.map((_, k) => `IM${k + 1}.dcm`) })
        ),
      /IM8\.dcm: JPEG 2000 codestream: no SIZ marker/,
    );
    await assertRejects(
      () =>
        withPool(() =>
          readDicomSeries(jls, { decodeThreads, paths: jls.map((_, k) => `IM${k + 1}.dcm`) })
        ),
      /IM6\.dcm: JpegLSDecoder could not decode the frame/,
    );
  }
});

Deno.test("FrameDecoderPool decodes frames in workers and rejects what is pending at close", async () => {
  const frames = await j2kFrames();
  const pool = new FrameDecoderPool(2);
  try {
    assertEquals(pool.threads, 2);
    const pixels = await Promise.all(frames.map((f) => pool.decode(f)));
    for (let k = 0; k < frames.length; k++) {
      assertEquals(pixels[k], await decodeFrame(frames[k]));
    }
    const late = frames.map((f) => pool.decode(f));
    pool.close();
    for (const p of late) await assertRejects(() => p, /closed/);
    await assertRejects(() => pool.decode(frames[0]), /closed/);
  } finally {
    pool.close();
  }
});

Deno.test("FrameDecoderPool over ports to DecodeWorkers decodes, reports codec errors", async () => {
  const frames = await j2kFrames();
  const workers = new DecodeWorkers(2);
  const pools = [
    new FrameDecoderPool(workers.connect()),
    new FrameDecoderPool(workers.connect(1, 1)),
  ];
  try {
    assertEquals(pools.map((p) => p.threads), [2, 1]);
    for (const pool of pools) {
      const pixels = await Promise.all(frames.map((f) => pool.decode(f)));
      for (let k = 0; k < frames.length; k++) {
        assertEquals(pixels[k], await decodeFrame(frames[k]));
      }
      const bad = { ...frames[0], bytes: frames[0].bytes.subarray(0, 40) };
      await assertRejects(() => pool.decode(bad), /JPEG 2000 codestream: .*cut short/);
    }
  } finally {
    for (const p of pools) p.close();
    workers.close();
  }
});

Deno.test("a decoder that never answers fails its pool; a failed lent pool is passed over", async () => {
  const frames = await j2kFrames();
  const saved = { ...DECODER_LIMITS };
  Object.assign(DECODER_LIMITS, { baseMs: 200, msPerMegapixel: 0 });
  const { port1, port2 } = new MessageChannel();
  const pool = new FrameDecoderPool([port1]);
  try {
    await assertRejects(() => pool.decode(frames[0]), /did not answer in 0\.2 s/);
    assert(pool.closed);
    const files = await writeDicomSeries(phantom(), { syntax: "jpeg2000" });
    const img = await readDicomSeries(files.map((f) => f.bytes), { pool });
    assertSameImage(img.volume, phantom());
  } finally {
    Object.assign(DECODER_LIMITS, saved);
    pool.close();
    port2.close();
  }
});

Deno.test("prep with one worker and two decode threads caches what one thread caches", async () => {
  await using dir = await tempDir();
  await writeFiles(
    join(dir.path, "in", "s"),
    await writeDicomSeries(phantom(), { syntax: "jpeg2000" }),
  );
  const found = await discoverInputs([join(dir.path, "in")]);
  const values = [];
  for (const decodeThreads of [1, 2]) {
    const out = join(dir.path, `c${decodeThreads}`);
    const run = await runPrep(found.cases, {
      out,
      dataset: "d",
      recipe: resolveRecipe("voco-v2"),
      storage: EXACT,
      workers: 1,
      decodeThreads,
    });
    assertEquals(run.reports.map((r) => r.status), ["written"]);
    values.push((await readCase(new FileSystemStore(out), "/d/s")).data);
  }
  assertEquals(maxAbsDiff(values[0], values[1]), 0);
});

Deno.test("readDicomSeries() names an unsupported transfer syntax", async () => {
  const v = phantom();
  const files = await writeDicomSeries(v);
  const lossy = files.map((f, k) => {
    const el = [
      { tag: 0x00080016, vr: "UI", value: "1.2.840.10008.5.1.4.1.1.2" },
      { tag: 0x00080060, vr: "CS", value: "CT" },
      { tag: 0x00200032, vr: "DS", value: `0\\0\\${3 * k}` },
      { tag: 0x00200037, vr: "DS", value: "1\\0\\0\\0\\1\\0" },
      { tag: 0x00280002, vr: "US", value: [1] },
      { tag: 0x00280010, vr: "US", value: [36] },
      { tag: 0x00280011, vr: "US", value: [40] },
      { tag: 0x00280030, vr: "DS", value: "2\\2" },
      { tag: 0x00280100, vr: "US", value: [8] },
      { tag: 0x7fe00010, vr: "OW", value: f.bytes.subarray(0, 16) },
    ];
    return writeDicomFile(el, "1.2.840.10008.1.2.4.50", "1.2.840.10008.5.1.4.1.1.2", newUid());
  });
  await assertRejects(
    () => readDicomSeries(lossy),
    /Transfer syntax 1\.2\.840\.10008\.1\.2\.4\.50 is not supported/,
  );
});

Deno.test("discovery takes one case per CT series and skips other modalities, scouts and junk", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "patient1");
  const write = (sub: string, files: NamedBytes[]) => writeFiles(join(root, sub), files);
  const studyUid = newUid();
  await write("ct_a", await writeDicomSeries(phantom(), { studyUid, seriesNumber: 2 }));
  // Two series in one folder, files without the .dcm suffix.
  await write(
    "mixed",
    (await writeDicomSeries(phantom("RAS"), { seriesNumber: 3, fileName: (i) => `A${i}` }))
      .concat(await writeDicomSeries(phantom(), { seriesNumber: 4, fileName: (i) => `B${i}` })),
  );
  await write("seg", await writeDicomSeries(phantom(), { modality: "SEG" }));
  await write(
    "scout",
    (await writeDicomSeries(phantom(), { imageType: "ORIGINAL\\PRIMARY\\LOCALIZER" })).slice(0, 2),
  );
  await Deno.writeTextFile(join(root, "notes.txt"), "not an image");
  await Deno.writeTextFile(join(root, "README"), "not DICOM either");
  const found = await discoverInputs([root]);
  assertEquals(found.cases.map((c) => [c.name, c.format, c.files.length]), [
    ["ct_a", "dicom", 12],
    ["mixed_series3", "dicom", 12],
    ["mixed_series4", "dicom", 12],
  ]);
  assertEquals(found.cases[0].source, "ct_a");
  assert(found.cases[1].source.startsWith("mixed#2.25."), found.cases[1].source);
  const reasons = found.skipped.map((s) => s.reason);
  assertEquals(reasons.filter((r) => /modality SEG/.test(r)).length, 12);
  assertEquals(reasons.filter((r) => /localizer/.test(r)).length, 2);
  assertEquals(found.skipped.length, 14);
});

Deno.test("prep skips a study's screenshots: protocol pages and colour dose reports", async () => {
  await using dir = await tempDir();
  const study = join(dir.path, "study");
  await writeFiles(join(study, "ct"), await writeDicomSeries(phantom()));
  const page = (samples: number) => {
    const sc = "1.2.840.10008.5.1.4.1.1.7";
    return writeDicomFile(
      [
        { tag: 0x00080008, vr: "CS", value: "DERIVED\\SECONDARY\\OTHER" },
        { tag: 0x00080016, vr: "UI", value: sc },
        { tag: 0x00080060, vr: "CS", value: "CT" },
        { tag: 0x0020000e, vr: "UI", value: newUid() },
        { tag: 0x00280002, vr: "US", value: [samples] },
        { tag: 0x00280010, vr: "US", value: [4] },
        { tag: 0x00280011, vr: "US", value: [4] },
        { tag: 0x00280100, vr: "US", value: [8] },
        { tag: 0x7fe00010, vr: "OB", value: new Uint8Array(16 * samples) },
      ],
      "1.2.840.10008.1.2.1",
      sc,
      newUid(),
    );
  };
  await Deno.writeFile(join(study, "protocol.dcm"), page(1));
  await Deno.writeFile(join(study, "dose.dcm"), page(3));
  const found = await discoverInputs([study]);
  assertEquals(found.cases.map((c) => c.name), ["ct"]);
  assertEquals(found.skipped.map((s) => s.reason.split(" (")[0].split(" without")[0]).sort(), [
    "Secondary Capture Image Storage",
    "colour image",
  ]);
  const { code, text } = await runTask(prepMain, [study, "--out", join(dir.path, "c"), "--quiet"]);
  assertEquals(code, 0, text);
});

Deno.test("files that claim a format but do not parse fail their case, never vanish", async () => {
  await using dir = await tempDir();
  const inp = join(dir.path, "in");
  const write = (sub: string, files: NamedBytes[]) => writeFiles(join(inp, sub), files);
  await write("good", await writeDicomSeries(phantom()));
  // A slice cut before its pixel data (7FE0,0010), as an interrupted download leaves it.
  const trunc = await writeDicomSeries(phantom());
  const b = trunc[4].bytes;
  const at = b.findIndex((x, i) => x === 0xe0 && b[i + 1] === 0x7f && b[i + 2] === 0x10);
  trunc[4] = { ...trunc[4], bytes: b.subarray(0, at) };
  await write("truncated", trunc);
  // A slice whose header is garbage after the DICM magic.
  const garbled = await writeDicomSeries(phantom());
  const g = garbled[2].bytes.slice(0, 600);
  for (let i = 132; i < g.length; i++) g[i] = (i * 7919) & 255;
  garbled[2] = { ...garbled[2], bytes: g };
  await write("garbled", garbled);
  // An empty .dcm next to two series, and one alone.
  await write(
    "two",
    (await writeDicomSeries(phantom(), { seriesNumber: 1, fileName: (i) => `A${i}.dcm` }))
      .concat(await writeDicomSeries(phantom(), { seriesNumber: 2, fileName: (i) => `B${i}.dcm` }))
      .concat([{ name: "empty.dcm", bytes: new Uint8Array(0) }]),
  );
  await write("alone", [{ name: "empty.dcm", bytes: new Uint8Array(0) }]);
  await Deno.writeTextFile(join(inp, "broken.mhd"), "NDims = 3\nDimSize = 4 4\n");
  await write("seg", await writeDicomSeries(phantom(), { modality: "SEG" }));

  const found = await discoverInputs([inp]);
  assertEquals(found.cases.map((c) => [c.name, c.files.length]).sort(), [
    ["alone", 1],
    ["broken", 1],
    ["garbled", 12],
    ["good", 12],
    ["truncated", 12],
    ["two_series1", 12],
    ["two_series2", 12],
    ["two_unreadable", 1],
  ]);
  assertEquals(found.skipped.length, 12, "the SEG files are skipped, nothing else");

  const out = join(dir.path, "cache");
  const { code, text } = await runTask(prepMain, [inp, "--out", out, "--quiet"]);
  assertEquals(code, 1, text);
  for (
    const re of [
      /FAILED .*truncated.*IM0005\.dcm: a CT image without pixel data \(truncated file\?\)/,
      /FAILED .*garbled.*IM0003\.dcm: (no SOP class UID|Not a readable DICOM file)/,
      /FAILED .*two.*empty\.dcm: Not a readable DICOM file/,
      /FAILED .*alone.*empty\.dcm: Not a readable DICOM file/,
      /FAILED .*broken\.mhd: .*MetaImage/,
    ]
  ) assert(re.test(text), `${re} not in:\n${text}`);
  assertEquals((await listCases(out)).map((c) => c.name).sort(), [
    "good",
    "two_series1",
    "two_series2",
  ]);
});

Deno.test("prep caches good series and reports a broken one by name and reason", async () => {
  await using dir = await tempDir();
  const inp = join(dir.path, "dicom");
  for (const [sub, syntax] of [["good", "jpeg2000"], ["broken", "rle"]] as const) {
    await writeFiles(join(inp, sub), await writeDicomSeries(phantom(), { syntax }));
  }
  await Deno.remove(join(inp, "broken", "IM0005.dcm"));
  const out = join(dir.path, "cache");
  const { code, text } = await runTask(prepMain, [inp, "--out", out, "--quiet"]);
  assertEquals(code, 1, text);
  assert(/FAILED .*broken.*Non-uniform slice gap.*IM0004\.dcm and .*IM0006\.dcm/.test(text), text);
  assertEquals((await listCases(out)).map((c) => c.name), ["good"]);
  const a = (await readCase(new FileSystemStore(out), "/dicom/good")).attributes;
  assertEquals(a.source, "good");
  assertEquals((a as unknown as Record<string, unknown>).source_files, 12);
});

Deno.test({
  name: "the shared JPEG 2000 DICOM series cached as float32 equals MONAI's voco-v2 output",
  ignore: !HAVE_SHARED,
  async fn() {
    await using dir = await tempDir();
    const out = join(dir.path, "cache");
    const found = await discoverInputs([`${SHARED}data/ct/dicom_series`]);
    assertEquals(found.cases.length, 1);
    assertEquals(found.cases[0].files.length, 20);
    const run = await runPrep(found.cases, {
      out,
      dataset: "dicom",
      recipe: resolveRecipe("voco-v2"),
      storage: EXACT,
      workers: 1,
    });
    assertEquals(run.reports[0].status, "written", run.reports[0].error);
    const c = await readCase(new FileSystemStore(out), "/dicom/dicom_series");
    const g = await loadGolden("dicom_ct.voco-v2");
    assertEquals(c.shape, g.shape);
    assertClose(c.attributes.affine, g.affine, 1e-4);
    const d = maxAbsDiff(c.data, g.data);
    assert(d <= 1e-4, `max abs difference ${d}`);
  },
});

/** Sets the US element `tag` (explicit VR little endian) of a DICOM file to `value`. */
function setUs(bytes: Uint8Array, tag: number, value: number): Uint8Array {
  const out = bytes.slice();
  const g = tag >>> 16, e = tag & 0xffff;
  const at = out.findIndex((x, i) =>
    x === (g & 255) && out[i + 1] === g >> 8 && out[i + 2] === (e & 255) &&
    out[i + 3] === e >> 8 && out[i + 4] === 0x55 && out[i + 5] === 0x53
  );
  assert(at > 0, `no US element ${tag.toString(16)}`);
  new DataView(out.buffer).setUint16(at + 8, value, true);
  return out;
}

/** Offset of the first JPEG 2000 codestream (FF4F FF51) in a file. */
function codestreamAt(b: Uint8Array): number {
  const at = b.findIndex((x, i) => x === 0xff && b[i + 1] === 0x4f && b[i + 2] === 0xff);
  assert(at > 0 && b[at + 3] === 0x51, "no J2K codestream found");
  return at;
}

/** Runs `deno run -A tasks/prep.ts ARGS` with a kill timer: exit code and output. */
async function prepProcess(args: string[], timeoutMs = 90_000) {
  const task = new URL("../../../../tasks/prep.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", task, ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return { code: out.code, signal: out.signal, text };
}

Deno.test("an HTJ2K frame whose SIZ subsampling is not 1 fails fast, decoded inline beside a good case", async () => {
  await using dir = await tempDir();
  const files = await writeDicomSeries(phantom(), { syntax: "htj2k" });
  const b = files[2].bytes;
  b[codestreamAt(b) + 44] = 2; // YRsiz: OpenJPH loops forever on it
  await writeFiles(join(dir.path, "series"), files);
  await Deno.writeFile(
    join(dir.path, "good.nii.gz"),
    writeNifti(makePhantom({ shape: [30, 30, 20] })),
  );
  // Two cases on two workers, one decode thread each: the frame is decoded inline.
  const { code, signal, text } = await prepProcess([
    join(dir.path, "series"),
    join(dir.path, "good.nii.gz"),
    "--out",
    join(dir.path, "c.zarr"),
    "--workers",
    "2",
    "--decode-threads",
    "1",
    "--quiet",
  ]);
  assertEquals([code, signal], [1, null], text);
  assert(/FAILED .*IM0003\.dcm: JPEG 2000 codestream: SIZ subsampling is 1x2/.test(text), text);
  assert(/1 written, 0 unchanged, 1 failed/.test(text), text);
});

Deno.test("a frame whose decode overruns its time stops the worker; the next case is written", async () => {
  await using dir = await tempDir();
  await writeFiles(
    join(dir.path, "in", "series"),
    await writeDicomSeries(phantom(), { syntax: "jpeg2000" }),
  );
  await Deno.writeFile(
    join(dir.path, "in", "good.nii.gz"),
    writeNifti(makePhantom({ shape: [30, 30, 20] })),
  );
  const cases = (await discoverInputs([join(dir.path, "in")])).cases;
  assertEquals(cases.map((c) => c.format), ["nifti", "dicom"]);
  const s = await runPrep([cases[1], cases[0]], {
    out: join(dir.path, "c.zarr"),
    dataset: "d",
    recipe: resolveRecipe("voco-v2"),
    storage: EXACT,
    workers: 1,
    decodeThreads: 1,
    // 1 ms per frame: loading the codec alone takes longer, so the watchdog must fire.
    decodeLimits: { baseMs: 1, msPerMegapixel: 0 },
  });
  assertEquals(s.reports.map((r) => r.status), ["failed", "written"]);
  assert(
    /IM0001\.dcm: decoding the frame took more than 0 s, so the decoder was stopped/.test(
      s.reports[0].error!,
    ),
    s.reports[0].error,
  );
});

Deno.test("header lies fail the series naming the file: 8 bits in a 16-bit J2K slice, Rows 0, 65535 x 65535", async () => {
  const j2k = (await writeDicomSeries(phantom(), { syntax: "jpeg2000" })).map((f) => f.bytes);
  const paths = j2k.map((_, k) => `IM${k + 1}.dcm`);
  const eight = j2k.slice();
  eight[4] = setUs(setUs(eight[4], 0x00280100, 8), 0x00280101, 8);
  for (const decodeThreads of [1, 2]) {
    await assertRejects(
      () => withPool(() => readDicomSeries(eight, { paths, decodeThreads })),
      /IM5\.dcm: JPEG 2000 codestream: samples are 16-bit, more than the DICOM header's Bits Allocated 8/,
    );
  }
  const native = (await writeDicomSeries(phantom())).map((f) => f.bytes);
  const rows0 = native.slice();
  rows0[3] = setUs(rows0[3], 0x00280010, 0);
  await assertRejects(
    () => readDicomSeries(rows0, { paths }),
    /IM4\.dcm: Rows = 0 and Columns = 40: an image needs at least 1 of each/,
  );
  const huge = native.map((b) => setUs(setUs(b, 0x00280010, 65535), 0x00280011, 65535));
  await assertRejects(
    () => readDicomSeries(huge, { paths }),
    /DICOM series \(12 slices of 65535x65535\) declares 65535x65535x12 voxels, which need about/,
  );
  const native8 = native.slice();
  native8[6] = setUs(native8[6], 0x00280100, 8);
  native8[6] = setUs(native8[6], 0x00280101, 8);
  await assertRejects(
    () => readDicomSeries(native8, { paths }),
    /IM7\.dcm: Pixel Data holds 2880 bytes, twice or more the 1440/,
  );
});

Deno.test("messages name the file and the reason: a cut implicit-VR slice, a damaged offset table", async () => {
  const implicit = (await writeDicomSeries(phantom(), { syntax: "implicit" })).map((f) => f.bytes);
  implicit[7] = implicit[7].subarray(0, 300);
  const paths = implicit.map((_, k) => `IM${k + 1}.dcm`);
  const err = await assertRejects(() => readDicomSeries(implicit, { paths }), /^IM8\.dcm: /);
  assert(!/undefined/.test(err.message) && /cut short/.test(err.message), err.message);
  const [multi] = await writeDicomSeries(phantom(), { syntax: "jpeg2000", multiFrame: true });
  const b = multi.bytes.slice();
  // The basic offset table: the first item (FFFE,E000) after the pixel data element.
  const pix = b.findIndex((x, i) =>
    x === 0xe0 && b[i + 1] === 0x7f && b[i + 2] === 0x10 && b[i + 3] === 0x00
  );
  const item = pix + 12;
  assertEquals([b[item], b[item + 1], b[item + 2], b[item + 3]], [0xfe, 0xff, 0x00, 0xe0]);
  const v = new DataView(b.buffer);
  const length = v.getUint32(item + 4, true);
  for (let o = 4; o < length; o += 4) v.setUint32(item + 8 + o, 0x7fffffff, true);
  await assertRejects(
    () => readDicomSeries([b], { paths: ["multi.dcm"] }),
    /multi\.dcm \(frame \d+\): Cannot read frame \d+ of the encapsulated pixel data \(offset table or fragments damaged: /,
  );
});

Deno.test("a series folder of extension-less files: an empty, cut or magic-less slice fails the series by name", async () => {
  await using dir = await tempDir();
  const named = (i: number) => `IM${String(i + 1).padStart(4, "0")}`;
  const damage: [string, (b: Uint8Array) => Uint8Array, number, RegExp][] = [
    ["empty", () => new Uint8Array(0), 11, /IM0012: Not a readable DICOM file: it is empty/],
    ["cut", (b) => b.subarray(0, 100), 11, /IM0012: /],
    ["magic", (b) => b.map((x, i) => i === 129 ? 0x58 : x), 11, /IM0012: /],
    ["middle", () => new Uint8Array(0), 5, /IM0006: Not a readable DICOM file: it is empty/],
  ];
  for (const [sub, edit, k] of damage) {
    const files = await writeDicomSeries(phantom(), { fileName: named });
    files[k] = { ...files[k], bytes: edit(files[k].bytes) };
    await writeFiles(join(dir.path, "in", sub), files);
  }
  const found = await discoverInputs([join(dir.path, "in")]);
  assertEquals(found.cases.map((c) => [c.name, c.files.length]), [
    ["cut", 12],
    ["empty", 12],
    ["magic", 12],
    ["middle", 12],
  ]);
  const { code, text } = await runTask(prepMain, [
    join(dir.path, "in"),
    "--out",
    join(dir.path, "c.zarr"),
    "--quiet",
  ]);
  assertEquals(code, 1, text);
  for (const [sub, , , re] of damage) {
    const line = text.split("\n").find((l) => l.startsWith("  FAILED") && l.includes(`/${sub} `));
    assert(line && re.test(line) && !/slice gap/.test(line), `${sub}: ${line}\n${text}`);
  }
});

Deno.test("a slice with a damaged Modality that shares a CT series' UID fails the series", async () => {
  await using dir = await tempDir();
  const files = await writeDicomSeries(phantom());
  const b = files[6].bytes;
  const at = b.findIndex((x, i) =>
    x === 0x08 && b[i + 1] === 0 && b[i + 2] === 0x60 && b[i + 3] === 0
  );
  b[at + 8 + 1] = 0x55; // "CT" -> "CU"
  await writeFiles(join(dir.path, "s"), files);
  const found = await discoverInputs([join(dir.path, "s")]);
  assertEquals([found.cases.length, found.cases[0].files.length, found.skipped.length], [1, 12, 0]);
  await assertRejects(
    () => readDicomSeries(files.map((f) => f.bytes), { paths: files.map((f) => f.name) }),
    /IM0007\.dcm: modality CU, not CT/,
  );
});
