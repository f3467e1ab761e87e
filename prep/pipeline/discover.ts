// Finding the cases of a run: image files, MetaImage pairs and DICOM series in the
// inputs, with the files passed over and why.
import { basename, dirname, extname, join, relative, resolve } from "node:path";
import { formatOf, stripImageSuffix } from "../formats/read_image.ts";
import { isDicomPart10, parseDicom, sliceInfo } from "../formats/dicom/dicom_parse.ts";
import { type DicomFileInfo, groupDicomSeries } from "../formats/dicom/dicom_series.ts";
import { metaImageDataFile, parseMetaImageHeader } from "../formats/read_metaimage.ts";
import { toNodeName } from "../../cache/format.ts";

/** One source image found in the inputs. */
export interface SourceCase {
  /** The image as the user knows it: its file, or the folder of a DICOM series. */
  path: string;
  /** Absolute paths of every file the image is read from (header first for `.mhd`). */
  files: string[];
  /** Reader name: `nifti`, `metaimage` or `dicom`. */
  format: string;
  /** Path relative to its dataset root, recorded in the cache. */
  source: string;
  /** Case name in the cache (unique within the dataset). */
  name: string;
}

/** A file that was looked at and not taken as an image, with why. */
export interface SkippedFile {
  /** Path of the file. */
  path: string;
  /** Why it is not an image case (`modality SEG, not CT`, …). */
  reason: string;
}

/** What discovery found. */
export interface Discovery {
  /** Image cases, in a stable order. */
  cases: SourceCase[];
  /** Files passed over, with the reason (non-CT DICOM, localizers, …). */
  skipped: SkippedFile[];
}

/** How far a scan has come: files listed, DICOM headers read. */
export interface ScanProgress {
  /** Files found so far. */
  files: number;
  /** DICOM headers read so far. */
  headers: number;
}

/** Options of {@linkcode discoverCases}. */
export interface DiscoverOptions {
  /** Folder that datalist paths are relative to; default: the JSON's folder. */
  baseDir?: string;
  /** Called now and then while a large tree is scanned (a LIDC-IDRI tree has 244k files). */
  onProgress?: (progress: ScanProgress) => void;
}

/** Extensions never sniffed for DICOM content (data, labels, documents, archives). */
const NOT_DICOM = new Set([
  ".raw",
  ".zraw",
  ".json",
  ".txt",
  ".csv",
  ".tsv",
  ".xml",
  ".md",
  ".pdf",
  ".png",
  ".jpg",
  ".jpeg",
  ".gz",
  ".zip",
  ".tar",
  ".npy",
  ".npz",
  ".pkl",
  ".py",
  ".sh",
  ".yaml",
  ".yml",
  ".nrrd",
  ".h5",
  ".log",
  ".html",
  ".xlsx",
]);

/**
 * Expands `prep` inputs into source cases: a file is itself; a folder is scanned
 * recursively (see {@linkcode findImages}); a `.json` file is a Decathlon/VoCo datalist
 * (`{"training": [{"image": "rel/path"}], …}`) whose `image` entries of every list are
 * taken. Case names are the file names without suffix (a DICOM series: its folder), made
 * unique with the relative path when two collide.
 */
export async function discoverCases(
  inputs: readonly string[],
  options: DiscoverOptions = {},
): Promise<SourceCase[]> {
  return (await discoverInputs(inputs, options)).cases;
}

/** Like {@linkcode discoverCases}, also returning the files passed over. */
export async function discoverInputs(
  inputs: readonly string[],
  options: DiscoverOptions = {},
): Promise<Discovery> {
  const cases: SourceCase[] = [];
  const skipped: SkippedFile[] = [];
  for (const input of inputs) {
    const abs = resolve(input);
    if (abs.toLowerCase().endsWith(".json") && (await statOrThrow(input)).isFile) {
      const listed = await readDatalist(abs, options.baseDir);
      const found = await findImages(listed.base, {
        files: listed.paths,
        onProgress: options.onProgress,
      });
      cases.push(...found.cases);
      skipped.push(...found.skipped);
    } else {
      const found = await findImages(abs, { onProgress: options.onProgress });
      cases.push(...found.cases);
      skipped.push(...found.skipped);
    }
  }
  const seen = new Set<string>();
  const unique = cases.filter((c) => !seen.has(c.files[0]) && seen.add(c.files[0]));
  return { cases: uniqueNames(unique), skipped };
}

async function statOrThrow(path: string): Promise<Deno.FileInfo> {
  try {
    return await Deno.stat(path);
  } catch {
    throw new Deno.errors.NotFound(`Input ${path} does not exist`);
  }
}

/** Options of {@linkcode findImages}. */
export interface FindImagesOptions {
  /** Take these files (absolute) instead of scanning `root`; sources stay relative to it. */
  files?: readonly string[];
  /** Keep only files whose path relative to `root` passes (scanning only). */
  filter?: (relativePath: string) => boolean;
  /** Called now and then while the tree is scanned. */
  onProgress?: (progress: ScanProgress) => void;
}

/** Files between two progress reports. */
const PROGRESS_EVERY = 512;

/**
 * Finds the images under `root` (a folder, scanned recursively without hidden entries,
 * or a single file): NIfTI (`.nii`, `.nii.gz`), MetaImage (`.mha`, `.mhd` with its data
 * file) and DICOM (`.dcm`, or any other file with the `DICM` magic), the DICOM files
 * grouped into one case per CT series (other modalities, files without pixels and
 * localizers are skipped with the reason). Files that claim a format but do not parse
 * are kept as cases, so that they fail with the reason instead of vanishing: a broken
 * `.mhd` header is its own case, an unreadable DICOM file joins the series of its folder.
 * Cases are named for their file (without suffix) or series folder; names may repeat
 * (see {@linkcode discoverCases}).
 */
export async function findImages(
  root: string,
  options: FindImagesOptions = {},
): Promise<Discovery> {
  const abs = resolve(root);
  const progress: ScanProgress = { files: 0, headers: 0 };
  const report = options.onProgress ?? (() => {});
  const counted = (path: string) => {
    if (++progress.files % PROGRESS_EVERY === 0) report(progress);
    return path;
  };
  let files: string[];
  let base = abs;
  if (options.files) {
    files = [];
    for (const f of options.files) {
      const isDir = await Deno.stat(f).then((i) => i.isDirectory, () => false);
      files.push(...(isDir ? await scan(f, counted) : [counted(f)]));
    }
  } else {
    const info = await statOrThrow(root);
    if (info.isDirectory) {
      files = await scan(abs, counted);
      if (options.filter) files = files.filter((f) => options.filter!(relative(abs, f)));
    } else {
      files = [abs];
      base = dirname(abs);
    }
  }
  const cases: SourceCase[] = [];
  const skipped: SkippedFile[] = [];
  const dicom: string[] = [];
  const dataFiles = new Set<string>();
  for (const f of files) {
    const format = formatOf(f) ??
      (NOT_DICOM.has(extname(f).toLowerCase()) ? undefined : await sniff(f));
    if (format === "dicom") dicom.push(f);
    else if (format === "nifti") cases.push(single(f, base, "nifti"));
    else if (format === "metaimage") {
      const c = single(f, base, "metaimage");
      if (f.toLowerCase().endsWith(".mhd")) {
        try {
          const data = await mhdDataFile(f);
          if (data) {
            c.files.push(data);
            dataFiles.add(data);
          }
        } catch {
          // A broken header is a failed case, not a skip: the reader names the reason.
        }
      }
      cases.push(c);
    }
  }
  report(progress);
  if (dicom.length > 0) {
    const found = await dicomCases(dicom, base, (n) => {
      progress.headers = n;
      report(progress);
    });
    cases.push(...found.cases);
    skipped.push(...found.skipped);
  }
  return { cases: cases.filter((c) => !dataFiles.has(c.files[0])), skipped };
}

function single(path: string, base: string, format: string): SourceCase {
  const source = relative(base, path) || basename(path);
  return { path, files: [path], format, source, name: stripImageSuffix(basename(path)) };
}

async function scan(dir: string, found: (path: string) => string): Promise<string[]> {
  const out: string[] = [];
  const entries = (await Array.fromAsync(Deno.readDir(dir))).sort((a, b) =>
    a.name < b.name ? -1 : 1
  );
  for (const e of entries) {
    if (e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    if (e.isDirectory) out.push(...await scan(p, found));
    else if (e.isFile) out.push(found(p));
  }
  return out;
}

async function readHead(path: string, bytes: number): Promise<Uint8Array> {
  const file = await Deno.open(path);
  try {
    const buf = new Uint8Array(bytes);
    let n = 0;
    while (n < bytes) {
      const r = await file.read(buf.subarray(n));
      if (r === null) break;
      n += r;
    }
    return buf.subarray(0, n);
  } finally {
    file.close();
  }
}

async function sniff(path: string): Promise<string | undefined> {
  try {
    return isDicomPart10(await readHead(path, 132)) ? "dicom" : undefined;
  } catch {
    return undefined;
  }
}

async function mhdDataFile(path: string): Promise<string | undefined> {
  const header = parseMetaImageHeader(await readHead(path, 64 * 1024));
  const name = metaImageDataFile(header);
  return name === undefined ? undefined : resolve(dirname(path), name);
}

/**
 * Reads a DICOM file's header (up to the pixel data): its first 8 KiB, which hold most CT
 * headers, then 64 KiB (long private headers), 1 MiB (an Enhanced CT file's per-frame
 * functional groups), then the whole file. A LIDC-IDRI tree has
 * 244k slices: reading 8 KiB of each instead of 64 KiB saves 14 GB of reads.
 */
async function dicomHeader(path: string): Promise<DicomFileInfo> {
  let ds;
  for (const bytes of [8 * 1024, 64 * 1024, 1024 * 1024]) {
    try {
      const head = await readHead(path, bytes);
      const parsed = parseDicom(head, "x7fe00010");
      // A cut that falls between two elements parses without error: only a head that
      // reaches the pixel data, or the whole file, is the whole header.
      if (parsed.elements.x7fe00010 || head.length < bytes) {
        ds = parsed;
        break;
      }
    } catch {
      // The header runs past these bytes (or the file is not DICOM): read more.
    }
  }
  ds ??= parseDicom(await Deno.readFile(path), "x7fe00010");
  return { path, info: sliceInfo(ds), hasPixels: Boolean(ds.elements.x7fe00010) };
}

async function dicomCases(
  files: string[],
  base: string,
  onHeaders: (read: number) => void,
): Promise<Discovery> {
  const infos: DicomFileInfo[] = [];
  const skipped: SkippedFile[] = [];
  // Files that look like DICOM (suffix or magic) but do not parse, or CT images without
  // pixel data: corrupt or truncated.
  const unreadable: string[] = [];
  const batch = 32;
  for (let i = 0; i < files.length; i += batch) {
    const results = await Promise.allSettled(files.slice(i, i + batch).map(dicomHeader));
    results.forEach((r, k) => {
      if (r.status === "fulfilled") infos.push(r.value);
      else unreadable.push(files[i + k]);
    });
    if ((i / batch) % 16 === 15) onHeaders(i + batch);
  }
  onHeaders(files.length);
  const grouped = groupDicomSeries(infos);
  unreadable.push(...grouped.broken.map((b) => b.path));
  skipped.push(...grouped.skipped);
  const folders = new Map<string, number>();
  for (const s of grouped.series) {
    const dir = dirname(s.files[0]);
    folders.set(dir, (folders.get(dir) ?? 0) + 1);
  }
  const cases: SourceCase[] = grouped.series.map((s) => {
    const dir = dirname(s.files[0]);
    const rel = relative(base, dir) || basename(dir);
    const shared = folders.get(dir)! > 1;
    return {
      path: dir,
      files: s.files,
      format: "dicom",
      source: shared ? `${rel}#${s.uid}` : rel,
      name: shared ? `${basename(dir)}_series${s.number ?? s.uid.slice(-6)}` : basename(dir),
    };
  });
  // An unreadable file is bad input, never a silent skip: it joins the one series of its
  // folder (whose slice it most likely is), or else forms a case of its own; either way
  // the case fails, naming the file and the parser's reason.
  const byFolder = Map.groupBy(unreadable, (f) => dirname(f));
  for (const [dir, bad] of byFolder) {
    const series = cases.filter((c) => c.path === dir);
    if (series.length === 1) {
      series[0].files.push(...bad);
      continue;
    }
    const rel = relative(base, dir) || basename(dir);
    const name = series.length ? `${basename(dir)}_unreadable` : basename(dir);
    cases.push({
      path: dir,
      files: bad,
      format: "dicom",
      source: series.length ? `${rel}#unreadable` : rel,
      name,
    });
  }
  return { cases, skipped };
}

async function readDatalist(
  file: string,
  baseDir?: string,
): Promise<{ base: string; paths: string[] }> {
  let json: unknown;
  try {
    json = JSON.parse(await Deno.readTextFile(file));
  } catch (e) {
    throw new SyntaxError(`Datalist ${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (!json || typeof json !== "object" || Array.isArray(json)) {
    throw new SyntaxError(`Datalist ${file} must be an object of lists ({"training": [...]})`);
  }
  const base = resolve(baseDir ?? dirname(file));
  const paths: string[] = [];
  for (const [key, list] of Object.entries(json as Record<string, unknown>)) {
    if (!Array.isArray(list)) continue;
    for (const item of list) {
      const image = typeof item === "string" ? item : (item as { image?: unknown })?.image;
      if (typeof image !== "string") {
        throw new SyntaxError(`Datalist ${file}: an entry of "${key}" has no "image" path`);
      }
      paths.push(resolve(base, image));
    }
  }
  return { base, paths };
}

/**
 * Makes case names valid and unique: a name that collides takes its source path instead
 * (`a/img1`, `b/img1` -> `a_img1`, `b_img1`), then a numeric suffix if still needed.
 */
export function uniqueNames(cases: readonly SourceCase[]): SourceCase[] {
  const short = cases.map((c) => toNodeName(c.name));
  const counts = new Map<string, number>();
  for (const s of short) counts.set(s, (counts.get(s) ?? 0) + 1);
  const used = new Set<string>();
  return cases.map((c, i) => {
    let name = counts.get(short[i])! > 1 ? toNodeName(stripImageSuffix(c.source)) : short[i];
    for (let k = 2; used.has(name); k++) name = `${toNodeName(stripImageSuffix(c.source))}_${k}`;
    used.add(name);
    return { ...c, name };
  });
}
