// Finding the cases of a run: image files, MetaImage pairs and DICOM series in the
// inputs, with the files passed over and why.
import { basename, dirname, extname, join, relative, resolve } from "node:path";
import { formatOf, stripImageSuffix } from "../formats/read_image.ts";
import { isDicomPart10, parseDicom, sliceInfo } from "../formats/dicom/dicom_parse.ts";
import { type DicomFileInfo, groupDicomSeries } from "../formats/dicom/dicom_series.ts";
import { metaImageDataFile, parseMetaImageHeader } from "../formats/read_metaimage.ts";
import { toNodeName } from "../../cache/format/format.ts";
import { describeFileKind, readHead, statRegular } from "./_files.ts";
import { BadInputError } from "../../cache/errors.ts";

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
  /**
   * Why the case cannot be read, when discovery already knows (a missing file, a file of
   * no supported format, a `.mhd` whose data file is another image, …): such a case fails
   * with this reason and is never read.
   */
  error?: string;
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

/** Image formats, in words, for messages about files that are none of them. */
const SUPPORTED = "NIfTI (.nii, .nii.gz), MetaImage (.mha, .mhd) or DICOM";

/**
 * Expands `prep` inputs into source cases: a file is itself; a folder is scanned
 * recursively (see {@linkcode findImages}); a `.json` file is a Decathlon/VoCo datalist
 * (`{"training": [{"image": "rel/path"}], …}`) whose `image` entries of every list are
 * taken. Case names are the file names without suffix (a DICOM series: its folder), made
 * unique with the relative path when two collide. Every input, and every datalist entry,
 * becomes a case or is reported: one that is missing, not a regular file, of no supported
 * format, or a folder without images becomes a case with an `error`.
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
  // Files given one by one are looked at together per folder, so that the slices of a
  // DICOM series named file by file (`prep series/*.dcm`) form one series.
  const stats = await Promise.all(
    inputs.map((input) => Deno.stat(resolve(input)).catch(() => undefined)),
  );
  const isFileInput = (abs: string, info?: Deno.FileInfo) =>
    !info?.isDirectory && !(abs.toLowerCase().endsWith(".json") && info?.isFile);
  const filesByFolder = Map.groupBy(
    inputs.map((input, i) => ({ abs: resolve(input), info: stats[i] }))
      .filter((x) => isFileInput(x.abs, x.info)),
    (x) => dirname(x.abs),
  );
  for (const [index, input] of inputs.entries()) {
    const abs = resolve(input);
    const info = stats[index];
    if (abs.toLowerCase().endsWith(".json") && info?.isFile) {
      const listed = await readDatalist(abs, options.baseDir);
      const found = await findImages(listed.base, {
        files: listed.paths,
        onProgress: options.onProgress,
      });
      cases.push(...found.cases);
      skipped.push(...found.skipped);
      continue;
    }
    if (!info?.isDirectory) {
      const group = filesByFolder.get(dirname(abs));
      if (!group) continue; // done with the first file of its folder
      filesByFolder.delete(dirname(abs));
      const found = await findImages(dirname(abs), {
        files: group.map((x) => x.abs),
        onProgress: options.onProgress,
      });
      cases.push(...found.cases);
      skipped.push(...found.skipped);
      continue;
    }
    const found = await findImages(abs, { onProgress: options.onProgress });
    if (found.cases.length === 0) {
      cases.push(failed(abs, dirname(abs), `no ${SUPPORTED} images found in this folder`));
    }
    cases.push(...found.cases);
    skipped.push(...found.skipped);
  }
  const seen = new Set<string>();
  const unique = cases.filter((c) => !seen.has(c.files[0]) && seen.add(c.files[0]));
  claimDataFiles(unique);
  return { cases: uniqueNames(unique), skipped };
}

/** A case that fails with `error` without being read. */
function failed(path: string, base: string, error: string): SourceCase {
  return { ...single(path, base, "unknown"), error };
}

/**
 * A MetaImage header (`.mhd`, or a `.mha` that names a data file) claims its data file
 * only when that is not an image in its own right: a header whose `ElementDataFile`
 * names itself, another case's file or any file with an image suffix fails, and the
 * other image stays a case of its own.
 */
function claimDataFiles(cases: SourceCase[]): void {
  const inputs = new Map<string, SourceCase>();
  for (const c of cases) {
    for (const f of c.format === "dicom" ? c.files : c.files.slice(0, 1)) inputs.set(f, c);
  }
  for (const c of cases) {
    if (c.format !== "metaimage" || c.files.length < 2 || c.error) continue;
    const data = c.files[1];
    const other = inputs.get(data);
    const what = data === c.files[0]
      ? "the header itself"
      : other
      ? `${data}, an image of its own (${other.format === "dicom" ? "a DICOM file" : other.format})`
      : formatOf(data)
      ? `${data}, an image file (${formatOf(data)})`
      : undefined;
    if (what) {
      c.error = `ElementDataFile names ${what}; a MetaImage header's data file must be raw ` +
        `voxels (.raw, .zraw)`;
      c.files = [c.files[0]];
    }
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
 * or a single file): NIfTI (`.nii`, `.nii.gz`), MetaImage (`.mha`, `.mhd`, with the data
 * file the header names) and DICOM (`.dcm`, or any other file with the `DICM` magic), the DICOM files
 * grouped into one case per CT series (other modalities, files without pixels and
 * localizers are skipped with the reason). Symbolic links are followed (a link back into
 * a folder already scanned is skipped as a loop); FIFOs, devices, sockets and broken
 * links are skipped with the reason. Files that claim a format but do not parse are kept
 * as cases, so that they fail with the reason instead of vanishing: a broken `.mhd`
 * header is its own case, an unreadable DICOM file joins the series of its folder, and
 * so does any other file in a series folder that is not DICOM (an empty or cut slice
 * without its `DICM` magic). Files given in `files` (datalist entries) each become a
 * case or a failed case. Cases are named for their file (without suffix) or series
 * folder; names may repeat (see {@linkcode discoverCases}).
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
  const cases: SourceCase[] = [];
  const skipped: SkippedFile[] = [];
  let files: string[] = [];
  let base = abs;
  /** Files named explicitly: each must give a case (or a failed one). */
  const explicit = new Set<string>();
  if (options.files) {
    for (const f of options.files) {
      const info = await Deno.stat(f).catch((e: Error) => e);
      if (info instanceof Error) {
        const why = info instanceof Deno.errors.NotFound ? "no such file or folder" : info.message;
        cases.push(failed(f, base, `cannot read it: ${why}`));
      } else if (info.isDirectory) {
        const found = await findImages(f, { onProgress: options.onProgress });
        if (found.cases.length === 0) {
          cases.push(failed(f, base, `no ${SUPPORTED} images found in this folder`));
        }
        cases.push(
          ...found.cases.map((c) => ({ ...c, source: relative(base, c.path) || c.source })),
        );
        skipped.push(...found.skipped);
      } else if (!info.isFile) {
        cases.push(failed(f, base, `it is ${describeFileKind(info)}; only regular files are read`));
      } else {
        files.push(counted(f));
        explicit.add(f);
      }
    }
  } else {
    const info = await Deno.stat(abs).catch(() => undefined);
    if (!info) return { cases: [failed(abs, dirname(abs), "no such file or folder")], skipped };
    if (info.isDirectory) {
      files = await scan(abs, counted, skipped, new Set());
      if (options.filter) files = files.filter((f) => options.filter!(relative(abs, f)));
    } else {
      files = [abs];
      base = dirname(abs);
    }
  }
  const dicom: string[] = [];
  /** Files of no known format that are not obviously something else (DICOM suspects). */
  const unknown: string[] = [];
  for (const f of files) {
    const format = formatOf(f) ??
      (NOT_DICOM.has(extname(f).toLowerCase()) ? undefined : await sniff(f));
    if (format === "dicom") dicom.push(f);
    else if (format === "nifti") cases.push(single(f, base, "nifti"));
    else if (format === "metaimage") {
      // A .mhd names its data file; so may a .mha (ElementDataFile other than LOCAL),
      // as ITK writes it: either is read with that file.
      const c = single(f, base, "metaimage");
      try {
        const data = await metaImageDataPath(f);
        if (data) c.files.push(data);
      } catch {
        // A broken header is a failed case, not a skip: the reader names the reason.
      }
      cases.push(c);
    } else if (explicit.has(f)) {
      const ext = extname(f);
      cases.push(failed(
        f,
        base,
        `not a ${SUPPORTED} file (${ext ? `suffix ${ext}` : "no suffix and no DICM magic"})`,
      ));
    } else if (!NOT_DICOM.has(extname(f).toLowerCase())) unknown.push(f);
  }
  report(progress);
  if (dicom.length > 0) {
    const claimed = new Set(cases.flatMap((c) => c.files.slice(1)));
    const found = await dicomCases(
      dicom,
      unknown.filter((f) => !claimed.has(f)),
      base,
      explicit,
      (n) => {
        progress.headers = n;
        report(progress);
      },
    );
    cases.push(...found.cases);
    skipped.push(...found.skipped);
  }
  return { cases, skipped };
}

function single(path: string, base: string, format: string): SourceCase {
  const source = relative(base, path) || basename(path);
  return { path, files: [path], format, source, name: stripImageSuffix(basename(path)) };
}

/**
 * The regular files under `dir`, sorted, hidden entries left out. Symbolic links are
 * followed; a link to a folder already on the walk (by real path) is a loop and skipped,
 * as are broken links and entries that are not regular files.
 */
async function scan(
  dir: string,
  found: (path: string) => string,
  skipped: SkippedFile[],
  visited: Set<string>,
): Promise<string[]> {
  visited.add(await Deno.realPath(dir).catch(() => dir));
  const out: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (e) {
    skipped.push({ path: dir, reason: `folder cannot be listed: ${(e as Error).message}` });
    return out;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.name.startsWith(".")) {
      // Hidden entries are passed over; one named as an image (`..nii.gz`) says so.
      if (formatOf(e.name) && !e.isDirectory) {
        skipped.push({
          path: p,
          reason: "hidden (its name starts with a dot): rename it to prep it",
        });
      }
      continue;
    }
    let isDir = e.isDirectory, isFile = e.isFile;
    if (e.isSymlink) {
      const info = await Deno.stat(p).catch(() => undefined);
      if (!info) {
        skipped.push({ path: p, reason: "broken symbolic link (its target does not exist)" });
        continue;
      }
      if (info.isDirectory) {
        const real = await Deno.realPath(p).catch(() => p);
        if (visited.has(real)) {
          skipped.push({ path: p, reason: `symbolic link loop (${real} is already scanned)` });
          continue;
        }
      } else if (!info.isFile) {
        skipped.push({ path: p, reason: `${describeFileKind(info)}; only regular files are read` });
        continue;
      }
      isDir = info.isDirectory;
      isFile = info.isFile;
    }
    if (isDir) out.push(...await scan(p, found, skipped, visited));
    else if (isFile) out.push(found(p));
    else {
      const info = await Deno.lstat(p).catch(() => undefined);
      const kind = info ? describeFileKind(info) : "not a regular file";
      skipped.push({ path: p, reason: `${kind}; only regular files are read` });
    }
  }
  return out;
}

async function sniff(path: string): Promise<string | undefined> {
  try {
    return isDicomPart10(await readHead(path, 132)) ? "dicom" : undefined;
  } catch {
    return undefined;
  }
}

/** The data file a MetaImage header names (absolute), or `undefined` for LOCAL data. */
async function metaImageDataPath(path: string): Promise<string | undefined> {
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
  const info = await statRegular(path);
  let ds;
  for (const bytes of [8 * 1024, 64 * 1024, 1024 * 1024]) {
    try {
      const head = await readHead(path, bytes, false);
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
  ds ??= parseDicom(await readHead(path, info.size, false), "x7fe00010");
  return { path, info: sliceInfo(ds), hasPixels: Boolean(ds.elements.x7fe00010) };
}

/** Reads the headers of `files` 32 at a time: the parsed ones and the unreadable paths. */
async function readHeaders(
  files: readonly string[],
  onHeaders: (read: number) => void,
  done = 0,
): Promise<{ infos: DicomFileInfo[]; unreadable: string[] }> {
  const infos: DicomFileInfo[] = [];
  const unreadable: string[] = [];
  const batch = 32;
  for (let i = 0; i < files.length; i += batch) {
    const results = await Promise.allSettled(files.slice(i, i + batch).map(dicomHeader));
    results.forEach((r, k) => {
      if (r.status === "fulfilled") infos.push(r.value);
      else unreadable.push(files[i + k]);
    });
    if ((i / batch) % 16 === 15) onHeaders(done + i + batch);
  }
  onHeaders(done + files.length);
  return { infos, unreadable };
}

/**
 * The DICOM cases of `files`: one per CT series (named for its folder, or for its file
 * when it is one file named on its own), the rest skipped with the reason. A file named
 * on its own (`explicit`) that is no CT slice becomes a failed case that says what it is;
 * a series of one single-frame slice fails at once, naming the file.
 */
async function dicomCases(
  files: string[],
  unknown: string[],
  base: string,
  explicit: ReadonlySet<string>,
  onHeaders: (read: number) => void,
): Promise<Discovery> {
  const skipped: SkippedFile[] = [];
  // Files that look like DICOM (suffix or magic) but do not parse, or CT images without
  // pixel data: corrupt or truncated.
  const { infos, unreadable } = await readHeaders(files, onHeaders);
  let grouped = groupDicomSeries(infos);
  // Any other file in a folder that holds a CT series is taken for one of its slices
  // (an empty or cut file has no DICM magic): it is read as DICOM, and fails the series
  // when it is not.
  const seriesFolders = new Set(grouped.series.flatMap((s) => s.files.map((f) => dirname(f))));
  const suspects = unknown.filter((f) => seriesFolders.has(dirname(f)));
  if (suspects.length > 0) {
    const more = await readHeaders(suspects, onHeaders, files.length);
    // Without the magic, bytes that parse as a data set with no UIDs are no DICOM file.
    for (const f of more.infos) {
      if (f.info.sopClass || f.info.seriesUid) infos.push(f);
      else unreadable.push(f.path);
    }
    unreadable.push(...more.unreadable);
    grouped = groupDicomSeries(infos);
  }
  const cases: (SourceCase & { uid?: string; frames?: number })[] = [];
  for (const s of grouped.skipped) {
    if (!explicit.has(s.path)) skipped.push(s);
    else cases.push(failed(s.path, base, `a DICOM file, but not a CT image slice: ${s.reason}`));
  }
  const folders = new Map<string, number>();
  for (const s of grouped.series) {
    const dir = dirname(s.files[0]);
    folders.set(dir, (folders.get(dir) ?? 0) + 1);
  }
  cases.push(...grouped.series.map((s) => {
    const dir = dirname(s.files[0]);
    if (s.files.length === 1 && explicit.has(s.files[0])) {
      // One file named on its own: the case is that file, not its folder.
      return { ...single(s.files[0], base, "dicom"), uid: s.uid, frames: s.frames };
    }
    const rel = relative(base, dir) || basename(dir);
    const shared = folders.get(dir)! > 1;
    return {
      path: dir,
      files: s.files,
      format: "dicom",
      source: shared ? `${rel}#${s.uid}` : rel,
      name: shared ? `${basename(dir)}_series${s.number ?? s.uid.slice(-6)}` : basename(dir),
      uid: s.uid,
      frames: s.frames,
    };
  }));
  // A broken file that names a CT series' UID is one of its slices: it fails that series.
  for (const b of grouped.broken) {
    const series = b.uid ? cases.find((c) => c.uid === b.uid) : undefined;
    if (series) series.files.push(b.path);
    else unreadable.push(b.path);
  }
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
  // A lone single-frame slice is no volume: say so now, naming the file, rather than
  // after reading it (a series with other files that fail keeps their reasons).
  for (const c of cases) {
    if (c.frames !== 1 || c.files.length !== 1 || c.error) continue;
    c.error = c.path === c.files[0]
      ? "a single CT slice, and a volume needs at least 2: give the folder of its series " +
        "(or all its files)"
      : `only 1 CT slice in this series (${basename(c.files[0])}); a volume needs at least 2`;
  }
  return { cases: cases.map(({ uid: _, frames: __, ...c }) => c), skipped };
}

async function readDatalist(
  file: string,
  baseDir?: string,
): Promise<{ base: string; paths: string[] }> {
  let json: unknown;
  try {
    await statRegular(file);
    json = JSON.parse(new TextDecoder().decode(await readHead(file, 64 * 2 ** 20, false)));
  } catch (e) {
    throw new BadInputError(`Datalist ${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (!json || typeof json !== "object" || Array.isArray(json)) {
    throw new BadInputError(`Datalist ${file} must be an object of lists ({"training": [...]})`);
  }
  const base = resolve(baseDir ?? dirname(file));
  const paths: string[] = [];
  for (const [key, list] of Object.entries(json as Record<string, unknown>)) {
    if (!Array.isArray(list)) continue;
    for (const item of list) {
      const image = typeof item === "string" ? item : (item as { image?: unknown })?.image;
      if (typeof image !== "string") {
        throw new BadInputError(`Datalist ${file}: an entry of "${key}" has no "image" path`);
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
    for (let k = 2; used.has(name); k++) name = toNodeName(`${stripImageSuffix(c.source)}_${k}`);
    used.add(name);
    return { ...c, name };
  });
}
