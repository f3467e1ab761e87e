// Discovery and whole runs on bad input: non-regular files, symlinks, .mhd data-file
// claims, datalist entries, missing inputs, Zarr-safe names, size limits, trailing data.
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { discoverInputs } from "../../../prep/pipeline/discover.ts";
import { makePhantom } from "../../../prep/synthetic/phantom.ts";
import { writeNifti } from "../../../prep/formats/write_nifti.ts";
import { writeMetaImage } from "../../../prep/synthetic/write_metaimage.ts";
import { writeDicomSeries } from "../../../prep/synthetic/write_dicom.ts";
import { listCases } from "../../../cache/write/cache_dir.ts";
import { main as prepMain } from "../../../tasks/prep.ts";
import { assert, assertEquals, runTask, tempDir } from "../../_helpers.ts";

const nifti = () => writeNifti(makePhantom({ shape: [24, 22, 12], spacingMm: [4, 4, 5] }));

/** The FAILED line of the summary that names `what`, or fails. */
function failedLine(text: string, what: string): string {
  const line = text.split("\n").find((l) => l.startsWith("  FAILED") && l.includes(what));
  assert(line, `no FAILED line for ${what}:\n${text}`);
  return line;
}

Deno.test("FIFOs and devices are refused with a message, never read: as input, in a folder, as a .mhd data file", async () => {
  await using dir = await tempDir();
  const inp = join(dir.path, "in");
  await Deno.mkdir(join(inp, "folder"), { recursive: true });
  const mkfifo = (p: string) => new Deno.Command("mkfifo", { args: [p] }).output();
  const made = await mkfifo(join(dir.path, "pipe.nii.gz"));
  if (!made.success) return console.warn("Skipping: mkfifo is not available");
  await mkfifo(join(inp, "folder", "pipe.nii.gz"));
  await mkfifo(join(inp, "pipe.raw"));
  await Deno.writeFile(join(inp, "folder", "good.nii.gz"), nifti());
  const v = makePhantom({ shape: [10, 10, 10] });
  const { header } = writeMetaImage(v, { dataFile: "pipe.raw" });
  await Deno.writeFile(join(inp, "fifo.mhd"), header);
  const zero = writeMetaImage(v, { dataFile: "/dev/zero" }).header;
  await Deno.writeFile(join(inp, "zero.mhd"), zero);
  // In a child process with a kill timer: a regression would block on the FIFO.
  const task = new URL("../../../tasks/prep.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      task,
      join(dir.path, "pipe.nii.gz"),
      inp,
      "--out",
      join(dir.path, "c.zarr"),
      "--quiet",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const out = await child.output();
  clearTimeout(timer);
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assertEquals([out.code, out.signal], [1, null], text);
  assert(
    /pipe\.nii\.gz\): it is a FIFO \(named pipe\); only regular files are read/.test(
      failedLine(text, "(/"),
    ),
    text,
  );
  assert(/pipe\.raw: it is a FIFO/.test(failedLine(text, "fifo.mhd")), text);
  assert(
    /\/dev\/zero: it is a character device; only regular files are read/.test(
      failedLine(text, "zero.mhd"),
    ),
    text,
  );
  assert(/skipped .*folder\/pipe\.nii\.gz: a FIFO/.test(text), text);
  assert(/1 written, 0 unchanged, 3 failed/.test(text), text);
});

Deno.test("a .mhd claims its data file only when that is not an image of its own", async () => {
  await using dir = await tempDir();
  const inp = join(dir.path, "in");
  await Deno.mkdir(join(inp, "series"), { recursive: true });
  await Deno.writeFile(join(inp, "ct.nii.gz"), nifti());
  for (const f of await writeDicomSeries(makePhantom({ shape: [20, 18, 6] }))) {
    await Deno.writeFile(join(inp, "series", f.name), f.bytes);
  }
  const v = makePhantom({ shape: [10, 10, 10] });
  const mhd = (name: string, data: string) =>
    Deno.writeFile(join(inp, name), writeMetaImage(v, { dataFile: data }).header);
  await mhd("a.mhd", "ct.nii.gz");
  await mhd("b.mhd", "series/IM0001.dcm");
  await mhd("self.mhd", "self.mhd");
  const found = await discoverInputs([inp]);
  const byName = new Map(found.cases.map((c) => [c.name, c]));
  assertEquals([...byName.keys()].sort(), ["a", "b", "ct", "self", "series"]);
  assertEquals(byName.get("series")!.files.length, 6);
  assertEquals(byName.get("ct")!.error, undefined);
  assert(
    /ElementDataFile names .*ct\.nii\.gz, an image of its own \(nifti\)/.test(
      byName.get("a")!.error!,
    ),
  );
  assert(/IM0001\.dcm, an image of its own \(a DICOM file\)/.test(byName.get("b")!.error!));
  assert(/ElementDataFile names the header itself/.test(byName.get("self")!.error!));
  const { code, text } = await runTask(prepMain, [
    inp,
    "--out",
    join(dir.path, "c.zarr"),
    "--quiet",
  ]);
  assertEquals(code, 1, text);
  assert(/2 written, 0 unchanged, 3 failed/.test(text), text);
});

Deno.test("symbolic links are followed; a loop or a broken link is listed as skipped", async () => {
  await using dir = await tempDir();
  const inp = join(dir.path, "in");
  await Deno.mkdir(join(dir.path, "elsewhere", "deep"), { recursive: true });
  await Deno.mkdir(inp);
  await Deno.writeFile(join(dir.path, "elsewhere", "deep", "b.nii.gz"), nifti());
  await Deno.writeFile(join(dir.path, "a.nii.gz"), nifti());
  await Deno.symlink(join(dir.path, "a.nii.gz"), join(inp, "a.nii.gz"));
  await Deno.symlink(join(dir.path, "elsewhere"), join(inp, "linked"));
  await Deno.symlink(inp, join(dir.path, "elsewhere", "deep", "back"));
  await Deno.symlink(join(dir.path, "nowhere.nii.gz"), join(inp, "broken.nii.gz"));
  const found = await discoverInputs([inp]);
  assertEquals(found.cases.map((c) => c.name), ["a", "b"]);
  assertEquals(found.skipped.map((s) => s.reason.split(" (")[0]).sort(), [
    "broken symbolic link",
    "symbolic link loop",
  ]);
});

Deno.test("every datalist entry becomes a case or is reported", async () => {
  await using dir = await tempDir();
  const base = dir.path;
  await Deno.writeFile(join(base, "good.nii.gz"), nifti());
  await Deno.writeFile(join(base, "scan.nrrd"), new TextEncoder().encode("NRRD0004\n"));
  await Deno.writeFile(join(base, "noext"), new Uint8Array(400));
  await Deno.mkdir(join(base, "empty"));
  const list = {
    training: [
      { image: "good.nii.gz" },
      { image: "missing.nii.gz" },
      { image: "missing_folder" },
      { image: "scan.nrrd" },
      { image: "empty" },
      { image: "noext" },
    ],
  };
  await Deno.writeTextFile(join(base, "list.json"), JSON.stringify(list));
  const found = await discoverInputs([join(base, "list.json")]);
  assertEquals(found.cases.length, 6);
  assertEquals(found.cases.find((c) => c.path.endsWith("good.nii.gz"))!.error, undefined);
  for (
    const re of [
      /missing\.nii\.gz/,
      /missing_folder/,
      /scan\.nrrd/,
      /empty/,
      /noext/,
    ]
  ) {
    const c = found.cases.find((c) => re.test(c.path))!;
    assert(c.error, `${re}: no error`);
  }
  assert(/no such file/.test(found.cases.find((c) => c.path.endsWith("missing.nii.gz"))!.error!));
  assert(/suffix \.nrrd/.test(found.cases.find((c) => c.path.endsWith("scan.nrrd"))!.error!));
  assert(
    /images found in this folder/.test(
      found.cases.find((c) => c.path.endsWith("empty"))!.error!,
    ),
  );
  assert(
    /no suffix and no DICM magic/.test(found.cases.find((c) => c.path.endsWith("noext"))!.error!),
  );
  const { code, text } = await runTask(prepMain, [
    join(base, "list.json"),
    "--out",
    join(base, "c.zarr"),
    "--quiet",
  ]);
  assertEquals(code, 1, text);
  assert(/6: 1 written, 0 unchanged, 5 failed/.test(text), text);
});

Deno.test("a missing input is a failed case; the other inputs are prepped", async () => {
  await using dir = await tempDir();
  await Deno.writeFile(join(dir.path, "good.nii.gz"), nifti());
  const { code, text } = await runTask(prepMain, [
    join(dir.path, "good.nii.gz"),
    join(dir.path, "typo.nii.gz"),
    "--out",
    join(dir.path, "c.zarr"),
    "--quiet",
  ]);
  assertEquals(code, 1, text);
  assert(
    /typo\.nii\.gz\): cannot read it: no such file or folder/.test(failedLine(text, "typo")),
    text,
  );
  assertEquals((await listCases(join(dir.path, "c.zarr"))).map((c) => c.name), ["good"]);
});

Deno.test("case names never collide with Zarr keys nor exceed name limits, rerun after rerun", async () => {
  await using dir = await tempDir();
  const inp = join(dir.path, "in");
  await Deno.mkdir(inp);
  const long = "x".repeat(245);
  for (const name of ["zarr.json.nii", "c.nii.gz", `${long}.nii`, `${long}y.nii`]) {
    await Deno.writeFile(join(inp, name), nifti());
  }
  const out = join(dir.path, "c.zarr");
  for (const expect of ["4 written", "4 unchanged"]) {
    const { code, text } = await runTask(prepMain, [inp, "--out", out, "--quiet"]);
    assertEquals(code, 0, text);
    assert(text.includes(`4: ${expect}`) || new RegExp(`4: .*${expect}`).test(text), text);
  }
  assert((await Deno.stat(join(out, "in", "zarr.json"))).isFile, "the group's metadata is a file");
  const names = (await listCases(out)).map((c) => c.name).sort();
  assertEquals(names.filter((n) => n.length > 200), []);
  assert(names.includes("zarr.json_") && names.includes("c_"), `${names}`);
  assertEquals(new Set(names).size, 4);
});

Deno.test("--max-voxels refuses a resampling beyond the limit; a huge sform fails with the default", async () => {
  await using dir = await tempDir();
  const coarse = makePhantom({ shape: [20, 20, 20], spacingMm: [12, 12, 12] });
  await Deno.writeFile(join(dir.path, "coarse.nii.gz"), writeNifti(coarse));
  const huge = writeNifti(makePhantom({ shape: [20, 20, 20] }), { gzip: false });
  // srow_x[0] and pixdim[1]: 1 km voxels (with pixdim left at 2 mm, MONAI's loader and
  // prep would take the qform instead).
  new DataView(huge.buffer).setFloat32(280, 1e6, true);
  new DataView(huge.buffer).setFloat32(80, 1e6, true);
  await Deno.writeFile(join(dir.path, "huge.nii"), huge);
  const out = join(dir.path, "c.zarr");
  const small = await runTask(prepMain, [
    join(dir.path, "coarse.nii.gz"),
    "--out",
    out,
    "--max-voxels",
    "1000000",
    "--quiet",
  ]);
  assertEquals(small.code, 1, small.text);
  assert(
    /spacing step would make 153x153x153 voxels .*more than --max-voxels 1000000/.test(small.text),
    small.text,
  );
  const big = await runTask(prepMain, [join(dir.path, "huge.nii"), "--out", out, "--quiet"]);
  assertEquals(big.code, 1, big.text);
  assert(
    /spacing step would make \d+x\d+x\d+ voxels .*more than --max-voxels 536870912/.test(big.text),
    big.text,
  );
});

Deno.test("trailing data after the declared voxels is not inflated and is noted in the summary", async () => {
  await using dir = await tempDir();
  const raw = writeNifti(makePhantom({ shape: [24, 22, 12] }), { gzip: false });
  const bomb = new Uint8Array(raw.length + 16 * 2 ** 20);
  bomb.set(raw);
  await Deno.writeFile(join(dir.path, "bomb.nii.gz"), gzipSync(bomb));
  const { code, text } = await runTask(prepMain, [
    join(dir.path, "bomb.nii.gz"),
    "--out",
    join(dir.path, "c.zarr"),
    "--quiet",
  ]);
  assertEquals(code, 0, text);
  assert(
    /NOTE .*bomb: .*bomb\.nii\.gz: trailing data after the \d+ bytes the header declares \(not inflated; ignored\)/
      .test(text),
    text,
  );
});

Deno.test("an empty folder or a dataset in the wrong layout gives one message, with the layout expected", async () => {
  await using dir = await tempDir();
  await Deno.mkdir(join(dir.path, "empty"));
  await Deno.mkdir(join(dir.path, "niftis"));
  await Deno.writeFile(join(dir.path, "niftis", "a.nii.gz"), nifti());
  const out = join(dir.path, "c.zarr");
  const empty = await runTask(prepMain, [join(dir.path, "empty"), "--out", out, "--quiet"]);
  assertEquals(empty.code, 2, empty.text); // nothing was done
  assertEquals(empty.text.split("\n").filter((l) => /no .*images/i.test(l)).length, 1, empty.text);
  const lidc = await runTask(prepMain, [
    "--dataset",
    `lidc=${join(dir.path, "niftis")}`,
    "--out",
    out,
    "--quiet",
  ]);
  assertEquals(lidc.code, 2, lidc.text);
  const lines = lidc.text.split("\n").filter((l) => /no .*images/i.test(l));
  assertEquals(lines.length, 1, lidc.text);
  assert(/expected layout: LIDC-IDRI-0001\/<study>\/<series>\/\*\.dcm/.test(lines[0]), lidc.text);
});
