// The caches a viewer shows: opened once through `CacheReader` (folders, http(s)://, s3://),
// their cases listed once, a case described for the page (shape, spacing, recipe, the
// display calibration back to HU from the recipe's window), its slabs read chunk by chunk,
// and the VoCo sample of a case for a seed, drawn by the sampler's own code.
import {
  type CacheCaseInfo,
  CacheReader,
  type CacheReaderOptions,
} from "../cache/read/cache_reader.ts";
import type { CaseAffine, CaseShape } from "../cache/format/case_volume.ts";
import { BadInputError } from "../cache/errors.ts";
import { niftiHeader, type WireType } from "./_nifti_header.ts";
import { readSlab } from "./_slab.ts";

/** One case in the page's list. */
export interface CaseEntry {
  /** Index of its cache in the viewer's list. */
  cache: number;
  /** `dataset/name`. */
  id: string;
  /** Array shape `[x, y, z]` (absent when unreadable). */
  shape?: CaseShape;
  /** Voxel spacing in mm. */
  spacing?: number[];
  /** The recipe's name. */
  recipe?: string;
  /** Why the case cannot be shown. */
  error?: string;
}

/** What the page needs to show one case. */
export interface CaseDetail extends CaseEntry {
  shape: CaseShape;
  /** Voxel index -> RAS mm. */
  affine: CaseAffine;
  /** The voxel type the slabs come in (the stored one; float32 for float caches). */
  type: WireType;
  /** Display value = stored * slope + inter; `unit` says what the display value is. */
  slope: number;
  inter: number;
  unit: "HU" | "value";
  /** The recipe's window in display units (else the stored range). */
  window: [number, number];
  /** Slices per slab (a chunk's z edge: a slab reads whole chunks only). */
  slab: number;
  /** The case's NIfTI-1 header as the page uses it, base64. */
  header: string;
  /** The other attributes: source file, original geometry, fingerprint, ... */
  attributes: Record<string, unknown>;
}

interface WindowStep {
  op: string;
  windowHu?: [number, number];
  outputRange?: [number, number];
}

const IDENTITY: CaseAffine = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]];
const toBase64 = (b: Uint8Array) => btoa(String.fromCharCode(...b));

/**
 * How stored values are shown: the stored type (integers as they are, with the case's
 * `scale_factor`/`add_offset` in the NIfTI slope), and, when the recipe has a window step,
 * the slope and intercept back to HU (the values outside the window were clipped).
 */
export function displayCalibration(info: CacheCaseInfo): Pick<
  CaseDetail,
  "type" | "slope" | "inter" | "unit" | "window"
> {
  const a = info.attributes ?? ({} as NonNullable<CacheCaseInfo["attributes"]>);
  const stored = info.dataType;
  const type: WireType = stored === "uint8" || stored === "uint16" ? stored : "float32";
  const quantised = type !== "float32" && typeof a.scale_factor === "number";
  const scale = quantised ? a.scale_factor! : 1, offset = quantised ? a.add_offset ?? 0 : 0;
  const top = type === "uint8" ? 255 : type === "uint16" ? 65535 : 1;
  const step = (a.recipe?.steps as WindowStep[] | undefined)?.find((s) => s.op === "window");
  if (step?.windowHu && step.outputRange) {
    const [hu0, hu1] = step.windowHu, [o0, o1] = step.outputRange;
    const k = (hu1 - hu0) / (o1 - o0);
    return {
      type,
      slope: scale * k,
      inter: hu0 + (offset - o0) * k,
      unit: "HU",
      window: [hu0, hu1],
    };
  }
  return {
    type,
    slope: scale,
    inter: offset,
    unit: "value",
    window: [offset, offset + scale * top],
  };
}

/** The caches of a viewer, opened, their cases listed once. */
export class Catalog {
  /** The readers, in the order given. */
  readonly readers: readonly CacheReader[];
  readonly #infos: CacheCaseInfo[][];

  private constructor(readers: CacheReader[], infos: CacheCaseInfo[][]) {
    this.readers = readers;
    this.#infos = infos;
  }

  /** Opens and lists every cache (throws naming the first that cannot be opened). */
  static async open(caches: readonly string[], options: CacheReaderOptions = {}): Promise<Catalog> {
    const readers = await Promise.all(caches.map((c) => CacheReader.open(c, options)));
    return new Catalog(readers, await Promise.all(readers.map((r) => r.list())));
  }

  /** Every case of every cache (cache order, then dataset and name). */
  list(): CaseEntry[] {
    return this.#infos.flatMap((infos, cache) =>
      infos.map((c) => ({
        cache,
        id: `${c.dataset}/${c.name}`,
        shape: c.shape,
        spacing: c.attributes?.spacing,
        recipe: c.attributes?.recipe?.name,
        ...(c.error ? { error: c.error } : {}),
      }))
    );
  }

  /** The listed case `id` of cache `cache` (throws naming the cache when there is none). */
  info(cache: number, id: string): CacheCaseInfo {
    const reader = this.readers[cache];
    if (!reader) {
      throw new BadInputError(`No cache number ${cache} (there are ${this.readers.length})`);
    }
    const found = this.#infos[cache].find((c) => `${c.dataset}/${c.name}` === id);
    if (!found) throw new Deno.errors.NotFound(`Case ${id} not found in ${reader.location}`);
    if (found.error || !found.shape) {
      throw new BadInputError(`Case ${id} of ${reader.location} cannot be read: ${found.error}`);
    }
    return found;
  }

  /** What the page needs to show case `id` of cache `cache` (reads no voxels). */
  describe(cache: number, id: string): CaseDetail {
    const info = this.info(cache, id);
    const { affine = IDENTITY, recipe, spacing, ...attributes } = info.attributes ?? {};
    const cal = displayCalibration(info);
    const shape = info.shape!;
    return {
      cache,
      id,
      shape,
      spacing: spacing ??
        [0, 1, 2].map((c) => Math.hypot(affine[0][c], affine[1][c], affine[2][c])),
      recipe: recipe?.name,
      affine,
      ...cal,
      slab: info.chunkShape?.[2] ?? 32,
      header: toBase64(niftiHeader({ shape, affine, ...cal })),
      attributes,
    };
  }

  /**
   * Slices `[z0, z1)` of a case as the page stores them: x fastest, in the case's stored
   * type (see {@linkcode readSlab}). Reads only the chunks these slices touch.
   */
  async slab(cache: number, id: string, z0: number, z1: number): Promise<Uint8Array<ArrayBuffer>> {
    const info = this.info(cache, id);
    const [, , nz] = info.shape!;
    if (!Number.isInteger(z0) || !Number.isInteger(z1) || z0 < 0 || z1 > nz || z1 <= z0) {
      throw new BadInputError(`Slices ${z0}..${z1} of case ${id} are not within 0..${nz}`);
    }
    return await readSlab(this.readers[cache], info, displayCalibration(info).type, z0, z1);
  }
}
