// Dataset adapters: where each public CT collection keeps its images, and datalists.
import { basename, relative, resolve } from "node:path";
import {
  discoverInputs,
  type Discovery,
  findImages,
  type ScanProgress,
  type SourceCase,
  uniqueNames,
} from "./discover.ts";
import { formatOf, stripImageSuffix } from "../formats/read_image.ts";

/** Knows one public dataset's layout and naming, and yields its image cases. */
export interface DatasetAdapter {
  /** Name used on the command line and as the default cache group (`btcv`, …). */
  name: string;
  /** Full name of the collection. */
  title: string;
  /** The layout the adapter expects, as shown by `--list-datasets`. */
  layout: string;
  /** Whether the relative paths of a folder's first levels look like this dataset. */
  detect(paths: readonly string[]): boolean;
  /** Finds the image cases under `root` (labels and non-CT series excluded). */
  find(root: string, options?: FindOptions): Promise<Discovery>;
}

/** Options of {@linkcode DatasetAdapter.find}. */
export interface FindOptions {
  /** Called now and then while a large tree is scanned. */
  onProgress?: (progress: ScanProgress) => void;
}

const first = (rel: string) => rel.split(/[\\/]/)[0];
const isNonDicomImage = (rel: string) => ["nifti", "metaimage"].includes(formatOf(rel) ?? "");
const underLabels = (rel: string) =>
  rel.split(/[\\/]/).slice(0, -1).some((d) =>
    /^(labels?(Tr|Ts)?|segmentations?|masks?|seg-lungs-LUNA16)$/i.test(d)
  );

/** Cases of a filtered scan, renamed by `name(case)`, names made unique. */
async function scanned(
  root: string,
  options: FindOptions | undefined,
  filter: (rel: string) => boolean,
  name: (c: SourceCase) => string = (c) => c.name,
): Promise<Discovery> {
  const found = await findImages(root, { filter, onProgress: options?.onProgress });
  return {
    cases: uniqueNames(found.cases.map((c) => ({ ...c, name: name(c) }))),
    skipped: found.skipped,
  };
}

/** Names DICOM series cases by their patient folder (the first path component). */
function byPatient(root: string) {
  return (c: SourceCase) => c.format === "dicom" ? first(relative(root, c.path)) || c.name : c.name;
}

/** The dataset adapters, in the order `--list-datasets` shows and detection tries them. */
export const DATASETS: readonly DatasetAdapter[] = [
  {
    name: "luna16",
    title: "LUNA16 (LIDC-IDRI subset, MetaImage)",
    layout: "subset0/ … subset9/<seriesuid>.mhd + .raw (seg-lungs-LUNA16/ masks are ignored)",
    detect: (paths) => paths.some((p) => /^subset\d\/.+\.mhd$/i.test(p)),
    find: (root, options) =>
      scanned(root, options, (rel) => /^subset\d+[\\/][^\\/]+\.(mhd|mha)$/i.test(rel)),
  },
  {
    name: "stoic21",
    title: "STOIC2021 (COVID-19 chest CT, MetaImage)",
    layout: "data/mha/<PatientID>.mha",
    detect: (paths) => paths.some((p) => /^data\/mha\/[^/]+\.mha$/i.test(p)),
    find: (root, options) =>
      scanned(root, options, (rel) => /^data[\\/]mha[\\/][^\\/]+\.mha$/i.test(rel)),
  },
  {
    name: "totalsegmentator",
    title: "TotalSegmentator",
    layout: "s0000/ct.nii.gz (s0000/segmentations/*.nii.gz are ignored)",
    detect: (paths) => paths.some((p) => /^s\d{4}\/ct\.nii(\.gz)?$/i.test(p)),
    find: (root, options) =>
      scanned(
        root,
        options,
        (rel) => /^s\d+[\\/]ct\.nii(\.gz)?$/i.test(rel),
        (c) => first(c.source),
      ),
  },
  {
    name: "lidc",
    title: "LIDC-IDRI (TCIA DICOM)",
    layout: "LIDC-IDRI-0001/<study>/<series>/*.dcm (CT series only; DX/CR, SEG and XML ignored)",
    detect: (paths) => paths.some((p) => /^LIDC-IDRI-\d{4}(\/|$)/i.test(p)),
    // DICOM only: a folder of NIfTI files is not this layout (and is reported as such).
    find: (root, options) =>
      scanned(root, options, (rel) => !underLabels(rel) && !isNonDicomImage(rel), byPatient(root)),
  },
  {
    name: "hnscc",
    title: "HNSCC (TCIA DICOM, or converted NIfTI)",
    layout: "HNSCC-01-0001/<study>/<series>/*.dcm (CT series only; PT, RTSTRUCT ignored), " +
      "or *.nii.gz",
    detect: (paths) => paths.some((p) => /^HNSCC-\d+-\d+/i.test(p)),
    find: (root, options) =>
      scanned(
        root,
        options,
        (rel) => !underLabels(rel) && !/(label|mask|seg|gtv|rtstruct)/i.test(basename(rel)),
        byPatient(root),
      ),
  },
  {
    name: "tcia-covid19",
    title: "TCIA CT Images in COVID-19",
    layout: "volume-covid19-A-0000.nii.gz (any folder depth)",
    detect: (paths) => paths.some((p) => /(^|\/)volume-covid19-A-[^/]*\.nii(\.gz)?$/i.test(p)),
    find: (root, options) =>
      scanned(root, options, (rel) => /(^|[\\/])volume-covid19-A-[^\\/]*\.nii(\.gz)?$/i.test(rel)),
  },
  {
    name: "flare23",
    title: "FLARE23 (abdomen CT)",
    layout: "imagesTr/FLARE23_0001_0000.nii.gz (images end in _0000; labels ignored)",
    detect: (paths) => paths.some((p) => /_0000\.nii(\.gz)?$/i.test(p)),
    find: (root, options) =>
      scanned(
        root,
        options,
        (rel) => /_0000\.nii(\.gz)?$/i.test(rel) && !underLabels(rel),
        (c) => stripImageSuffix(basename(c.path)).replace(/_0000$/, ""),
      ),
  },
  {
    name: "btcv",
    title: "BTCV (Beyond the Cranial Vault, abdomen)",
    layout: "imagesTr/img0001.nii.gz or RawData/Training/img/img0001.nii.gz (labels ignored)",
    detect: (paths) => paths.some((p) => /(^|\/)img\d+\.nii(\.gz)?$/i.test(p)),
    find: (root, options) =>
      scanned(
        root,
        options,
        (rel) => /(^|[\\/])img\d+\.nii(\.gz)?$/i.test(rel) && !underLabels(rel),
      ),
  },
  {
    name: "generic",
    title: "Any folder of CT images",
    layout: "NIfTI, MetaImage (.mha, .mhd) or DICOM anywhere below the folder " +
      "(label/mask folders ignored)",
    detect: () => true,
    find: (root, options) => scanned(root, options, (rel) => !underLabels(rel)),
  },
];

/** A Decathlon/VoCo datalist JSON, used when the dataset path is a `.json` file. */
export const DATALIST_ADAPTER: DatasetAdapter = {
  name: "datalist",
  title: "Decathlon/VoCo datalist JSON",
  layout: '{"training": [{"image": "rel/path.nii.gz"}, ...], ...}; paths relative to the JSON',
  detect: () => false,
  find: (root, options) => discoverInputs([root], options),
};

/** Relative paths (with `/`) of the entries in the first `depth` levels of `root`. */
async function sample(root: string, depth = 4, limit = 5000): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, prefix: string, level: number) => {
    if (level > depth || out.length >= limit) return;
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch {
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const e of entries) {
      if (e.name.startsWith(".") || out.length >= limit) continue;
      const rel = prefix ? `${prefix}/${e.name}` : e.name;
      out.push(rel);
      if (e.isDirectory) await walk(`${dir}/${e.name}`, rel, level + 1);
    }
  };
  await walk(root, "", 1);
  return out;
}

/** The adapter for `name`, or `undefined`. */
export function datasetAdapter(name: string): DatasetAdapter | undefined {
  if (name === DATALIST_ADAPTER.name) return DATALIST_ADAPTER;
  return DATASETS.find((d) => d.name === name.toLowerCase());
}

/**
 * Detects which dataset a path holds from its layout (a `.json` file is a datalist);
 * falls back to `generic`.
 */
export async function detectDataset(path: string): Promise<DatasetAdapter> {
  const abs = resolve(path);
  if (abs.toLowerCase().endsWith(".json")) return DATALIST_ADAPTER;
  const paths = await sample(abs);
  return DATASETS.find((d) => d.detect(paths))!;
}
