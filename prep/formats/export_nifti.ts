// `cache export`: cached cases as NIfTI files with their RAS affine, for ITK-SNAP, 3D Slicer
// and nibabel: the float32 values the readers return, or the stored integers with
// scl_slope/scl_inter (as small as the cache, decoded by any NIfTI reader).
import { join } from "node:path";
import {
  type CacheCaseInfo,
  CacheReader,
  type CacheReaderOptions,
} from "../../cache/read/cache_reader.ts";
import { BadInputError } from "../../cache/errors.ts";
import { closest } from "../../cache/text.ts";
import { type NiftiWriteDtype, writeNifti } from "./write_nifti.ts";

/** Options of {@linkcode exportNifti}. */
export interface ExportNiftiOptions extends CacheReaderOptions {
  /** One case, `DATASET/CASE`, written to `out` (a file). */
  case?: string;
  /** Every case of a dataset group, written into `out` (a folder) as `<case>.nii.gz`. */
  dataset?: string;
  /**
   * The stored integers with `scl_slope`/`scl_inter` (a quantised cache) instead of float32
   * values: a NIfTI reader decodes them to the cached values to the float32 rounding of
   * the header's slope. @default {false}
   */
  stored?: boolean;
  /** Called after each file is written. */
  onCase?: (info: { case: string; path: string; bytes: number }) => void;
}

/**
 * The NIfTI bytes of one cached case: the whole volume read through `reader`, its affine
 * (RAS) in the sform, gzip-compressed unless `gzip` is false.
 */
export async function caseToNifti(
  reader: CacheReader,
  info: CacheCaseInfo,
  stored = false,
  gzip = true,
): Promise<Uint8Array> {
  if (!info.shape) throw new BadInputError(`Case ${info.dataset}/${info.name}: ${info.error}`);
  const volume = await reader.readCrop(info.path, [0, 0, 0], info.shape);
  const slope = info.attributes?.scale_factor, inter = info.attributes?.add_offset ?? 0;
  if (stored && slope !== undefined && /^u?int/.test(info.dataType ?? "")) {
    return writeNifti(volume, {
      dtype: info.dataType as NiftiWriteDtype,
      sclSlope: slope,
      sclInter: inter,
      gzip,
    });
  }
  return writeNifti(volume, { dtype: "float32", gzip });
}

/**
 * Writes cached cases as NIfTI: `case` into the file `out`, or every case of `dataset`
 * into the folder `out`. The cache may be a folder or a URL. Returns the files written.
 * Throws a `BadInputError` naming the closest case or group when the one asked for is not
 * in the cache, or when `out` is a folder for one case; a failed write leaves no file.
 */
export async function exportNifti(
  location: string,
  out: string,
  options: ExportNiftiOptions,
): Promise<string[]> {
  const reader = await CacheReader.open(location, options);
  const all = await reader.list();
  const ids = all.map((c) => `${c.dataset}/${c.name}`);
  let chosen: CacheCaseInfo[];
  if (options.case !== undefined) {
    chosen = all.filter((c) => `${c.dataset}/${c.name}` === options.case);
    if (!chosen.length) {
      const near = closest(options.case, ids);
      throw new BadInputError(
        `No case ${options.case} in ${location}` + (near ? ` (did you mean ${near}?)` : ""),
      );
    }
    if ((await Deno.stat(out).catch(() => undefined))?.isDirectory) {
      throw new BadInputError(
        `--out ${out} is a folder; --case writes one file, such as ` +
          `${join(out, `${chosen[0].name}.nii.gz`)}`,
        { path: out },
      );
    }
  } else {
    chosen = all.filter((c) => c.dataset === options.dataset);
    if (!chosen.length) {
      const groups = [...new Set(all.map((c) => c.dataset))];
      throw new BadInputError(
        `No dataset group ${options.dataset} in ${location} (groups: ${groups.join(", ")})`,
      );
    }
    await Deno.mkdir(out, { recursive: true });
  }
  const written: string[] = [];
  for (const c of chosen) {
    const path = options.case !== undefined ? out : join(out, `${c.name}.nii.gz`);
    const bytes = await caseToNifti(reader, c, options.stored, !path.endsWith(".nii"));
    const tmp = `${path}.tmp-${Deno.pid}`;
    try {
      await Deno.writeFile(tmp, bytes);
      await Deno.rename(tmp, path);
    } catch (e) {
      await Deno.remove(tmp).catch(() => {}); // no half file left beside the user's
      throw e;
    }
    written.push(path);
    options.onCase?.({ case: `${c.dataset}/${c.name}`, path, bytes: bytes.length });
  }
  return written;
}
