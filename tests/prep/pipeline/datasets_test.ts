// Dataset adapters: miniature trees in each public layout, in the real formats and names.
import { dirname, join } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { makePhantom } from "../../../prep/synthetic/phantom.ts";
import { writeNifti } from "../../../prep/formats/write_nifti.ts";
import { writeMetaImage } from "../../../prep/synthetic/write_metaimage.ts";
import { writeDicomSeries } from "../../../prep/synthetic/write_dicom.ts";
import { parseDicom } from "../../../prep/formats/dicom/dicom_parse.ts";
import { datasetAdapter, DATASETS, detectDataset } from "../../../prep/pipeline/datasets.ts";
import { readCase } from "../../../cache/read/read_case.ts";
import { listCases } from "../../../cache/write/cache_dir.ts";
import { main as prepMain } from "../../../tasks/prep.ts";
import { assert, assertEquals, runTask, tempDir } from "../../_helpers.ts";

let seed = 0;
const vol = () => makePhantom({ shape: [24, 22, 10], spacingMm: [4, 4, 5], seed: ++seed });

async function put(path: string, bytes: Uint8Array) {
  await Deno.mkdir(dirname(path), { recursive: true });
  await Deno.writeFile(path, bytes);
}
const nii = (path: string) => put(path, writeNifti(vol()));
async function mhd(path: string, ext = ".raw") {
  const name = path.split("/").pop()!.replace(/\.mhd$/, ext);
  const { header, data } = writeMetaImage(vol(), { dataFile: name, compressed: ext === ".zraw" });
  await put(path, header);
  await put(join(dirname(path), name), data!);
}
const mha = (path: string) => put(path, writeMetaImage(vol()).header);
async function dicom(dir: string, options: Parameters<typeof writeDicomSeries>[1] = {}) {
  for (
    const f of await writeDicomSeries(vol(), {
      fileName: (i) => `1-${String(i + 1).padStart(3, "0")}.dcm`,
      ...options,
    })
  ) {
    await put(join(dir, f.name), f.bytes);
  }
}

/** Builds every layout under `root`; returns the expected case names per adapter. */
async function buildTrees(root: string): Promise<Record<string, string[]>> {
  const uid = "1.3.6.1.4.1.14519.5.2.1.6279.6001.";
  await nii(`${root}/btcv/RawData/Training/img/img0001.nii.gz`);
  await nii(`${root}/btcv/RawData/Training/img/img0002.nii.gz`);
  await nii(`${root}/btcv/RawData/Training/label/label0001.nii.gz`);
  await nii(`${root}/totalsegmentator/s0000/ct.nii.gz`);
  await nii(`${root}/totalsegmentator/s0000/segmentations/liver.nii.gz`);
  await nii(`${root}/totalsegmentator/s0001/ct.nii.gz`);
  await put(`${root}/totalsegmentator/meta.csv`, new TextEncoder().encode("image_id;age\n"));
  await mhd(`${root}/luna16/subset0/${uid}100.mhd`);
  await mhd(`${root}/luna16/subset1/${uid}200.mhd`);
  await mhd(`${root}/luna16/seg-lungs-LUNA16/${uid}100.mhd`, ".zraw");
  await put(`${root}/luna16/annotations.csv`, new TextEncoder().encode("seriesuid\n"));
  await nii(`${root}/covid/volume-covid19-A-0003.nii.gz`);
  await nii(`${root}/covid/volume-covid19-A-0011.nii.gz`);
  await mha(`${root}/stoic21/data/mha/1001.mha`);
  await mha(`${root}/stoic21/data/mha/1002.mha`);
  await put(`${root}/stoic21/metadata/reference.csv`, new TextEncoder().encode("PatientID\n"));
  await nii(`${root}/flare23/imagesTr/FLARE23_0001_0000.nii.gz`);
  await nii(`${root}/flare23/labelsTr/FLARE23_0001.nii.gz`);
  await nii(`${root}/flare23/unlabeled/FLARE23_2001_0000.nii.gz`);
  const lidc = `${root}/lidc`;
  await dicom(`${lidc}/LIDC-IDRI-0001/01-01-2000-NA-30178/3000566.000000-NA-03192`);
  await put(
    `${lidc}/LIDC-IDRI-0001/01-01-2000-NA-30178/3000566.000000-NA-03192/069.xml`,
    new TextEncoder().encode("<LidcReadMessage/>"),
  );
  await dicom(`${lidc}/LIDC-IDRI-0002/01-01-2000-NA-98329/3000522.000000-NA-04919`);
  await dicom(`${lidc}/LIDC-IDRI-0002/01-01-2000-NA-94866/3000923.000000-NA-62357`, {
    modality: "DX",
  });
  const hn = `${root}/hnscc/HNSCC-01-0001/12-05-1998-NA-RT SIMULATION-43582`;
  await dicom(`${hn}/2.000000-NA-CT-59297`);
  await dicom(`${hn}/3.000000-NA-PET-18542`, { modality: "PT" });
  await dicom(`${hn}/1.000000-NA-RTstruct-26416`, { modality: "RTSTRUCT" });
  await nii(`${root}/generic/a/scan.nii.gz`);
  await mha(`${root}/generic/b/scan.mha`);
  await dicom(`${root}/generic/c/series`);
  await nii(`${root}/generic/labels/scan.nii.gz`);
  return {
    btcv: ["img0001", "img0002"],
    totalsegmentator: ["s0000", "s0001"],
    luna16: [`${uid}100`, `${uid}200`],
    "tcia-covid19": ["volume-covid19-A-0003", "volume-covid19-A-0011"],
    stoic21: ["1001", "1002"],
    flare23: ["FLARE23_0001", "FLARE23_2001"],
    lidc: ["LIDC-IDRI-0001", "LIDC-IDRI-0002"],
    hnscc: ["HNSCC-01-0001"],
    generic: ["a_scan", "b_scan", "series"],
  };
}

const FOLDER: Record<string, string> = {
  "tcia-covid19": "covid",
};

Deno.test("each adapter detects its layout and yields its images only, with stable names", async () => {
  await using dir = await tempDir();
  const expected = await buildTrees(dir.path);
  for (const [name, names] of Object.entries(expected)) {
    const root = join(dir.path, FOLDER[name] ?? name);
    assertEquals((await detectDataset(root)).name, name, `detected layout of ${name}`);
    const adapter = datasetAdapter(name)!;
    const found = await adapter.find(root);
    assertEquals(found.cases.map((c) => c.name).sort(), names, name);
  }
  assertEquals(DATASETS.map((d) => d.name).sort(), [
    "btcv",
    "flare23",
    "generic",
    "hnscc",
    "lidc",
    "luna16",
    "stoic21",
    "tcia-covid19",
    "totalsegmentator",
  ]);
  const lidc = await datasetAdapter("lidc")!.find(join(dir.path, "lidc"));
  assert(lidc.skipped.some((s) => /modality DX/.test(s.reason)), "DX series skipped");
  const hn = await datasetAdapter("hnscc")!.find(join(dir.path, "hnscc"));
  assertEquals(hn.cases[0].files.length, 10);
});

Deno.test("prep --dataset caches several datasets in one run, each its own group and recipe", async () => {
  await using dir = await tempDir();
  await buildTrees(dir.path);
  const out = join(dir.path, "cache");
  const { code, text } = await runTask(prepMain, [
    "--dataset",
    `btcv=${dir.path}/btcv`,
    "--dataset",
    `${dir.path}/luna16`,
    "--dataset",
    `lidc=${dir.path}/lidc:chest`,
    "--dataset",
    `covid=${dir.path}/covid`,
    "--out",
    out,
    "--quiet",
  ]);
  assertEquals(code, 0, text);
  assert(/detected luna16/.test(text), text);
  assert(/detected tcia-covid19 .*cached as group "covid"/.test(text), text);
  const groups = new Map<string, string[]>();
  for (const c of await listCases(out)) {
    groups.set(c.dataset, [...(groups.get(c.dataset) ?? []), c.name]);
  }
  assertEquals([...groups.keys()].sort(), ["btcv", "covid", "lidc", "luna16"]);
  assertEquals(groups.get("lidc")!.sort(), ["LIDC-IDRI-0001", "LIDC-IDRI-0002"]);
  const store = new FileSystemStore(out);
  const recipeOf = async (path: `/${string}`) =>
    ((await readCase(store, path)).attributes.recipe as { name: string }).name;
  assertEquals(await recipeOf("/lidc/LIDC-IDRI-0001"), "chest");
  assertEquals(await recipeOf("/btcv/img0001"), "voco-v2");
  const { text: list } = await runTask(prepMain, ["--list-datasets"]);
  for (const d of DATASETS) assert(list.includes(d.name) && list.includes(d.layout), list);
});

Deno.test("adapters report scan progress: files found, then DICOM headers read", async () => {
  await using dir = await tempDir();
  await dicom(join(dir.path, "LIDC-IDRI-0001", "study", "series"));
  const notes = new TextEncoder().encode("not an image");
  for (let i = 0; i < 1100; i++) await put(join(dir.path, "docs", `n${i}.txt`), notes);
  const seen: { files: number; headers: number }[] = [];
  const found = await datasetAdapter("generic")!.find(dir.path, {
    onProgress: (p) => seen.push({ ...p }),
  });
  assertEquals(found.cases.length, 1);
  const files = seen.map((p) => p.files);
  assert(files.includes(512) && files.includes(1024), `progress at ${files}`);
  assertEquals(seen.at(-1), { files: 1100 + found.cases[0].files.length, headers: 10 });
});

Deno.test("discovery reads a long header whole even when a head cut falls between elements", async () => {
  await using dir = await tempDir();
  // Pad every header with a comment sized so that an element ends exactly at 8 KiB, where
  // discovery's first read stops.
  for (let pad = 7000; pad < 8000; pad += 2) {
    // An early element (Study Description), so that many elements follow it.
    const extraElements = [{ tag: 0x00081030, vr: "LT", value: "x".repeat(pad) }];
    const files = await writeDicomSeries(vol(), { extraElements, fileName: (i) => `A${i}.dcm` });
    const ds = parseDicom(files[0].bytes, "x7fe00010");
    const ends = Object.values(ds.elements).map((e) => e.dataOffset + e.length);
    if (!ends.includes(8192)) continue;
    // Two series in one folder: a header taken for whole at the cut would lose its file.
    files.push(...await writeDicomSeries(vol(), { extraElements, fileName: (i) => `B${i}.dcm` }));
    for (const f of files) await put(join(dir.path, "s", f.name), f.bytes);
    const found = await datasetAdapter("generic")!.find(dir.path);
    assertEquals(found.cases.map((c) => c.files.length), [10, 10]);
    assertEquals(found.skipped, []);
    return;
  }
  throw new Error("no padding put an element end at 8192");
});
