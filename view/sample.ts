// The VoCo sample of a case made visible: for a run seed and a global sample index, where
// the sampler puts the region, its base crops and its random crops with their overlap
// labels, computed by the sampler's own functions (`sampleGeometry`, `sampleRng`).
import type { CaseShape } from "../cache/format/case_volume.ts";
import { BadInputError } from "../cache/errors.ts";
import { sampleGeometry, type SampleSpec, sampleSpec } from "../train/sampler/voco_sample.ts";
import { sampleRng } from "../train/sampler/loader.ts";

/** Options of {@linkcode sampleView}. */
export interface SampleViewOptions {
  /** The run's seed (`--seed`). @default 0 */
  seed?: number;
  /** The global sample index (step x batch size + volume). @default 0 */
  sample?: number;
  /** Random crops (`--sw-batch-size`), model roi and grid; the version's defaults else. */
  crops?: number;
  roi?: number;
  grid?: number;
}

/** The VoCo sample of a case for a seed, in voxels of the case. */
export interface SampleView {
  /** The VoCo version (from the case's recipe) and the spec used. */
  version: "v1" | "v2";
  spec: SampleSpec;
  /** The run seed and the global sample index the generator came from. */
  seed: number;
  sample: number;
  /** The region: first voxel (negative where the case is zero-padded) and size. */
  regionStart: CaseShape;
  region: CaseShape;
  /** Base crops, `k = i * grid + j`, as first voxels (each `base` voxels a side). */
  bases: CaseShape[];
  /** Random crops as first voxels, with their `grid²` overlap labels. */
  crops: { start: CaseShape; labels: number[] }[];
}

/** The VoCo version a recipe name trains (`voco-v1...` is v1, anything else v2). */
export function recipeVersion(recipe: string | undefined): "v1" | "v2" {
  return recipe?.startsWith("voco-v1") ? "v1" : "v2";
}

/**
 * Where the sampler's sample `sample` of a run with `seed` lies in a case of `shape` made
 * with `recipe`, exactly as `buildSample` would cut it (the same draws, in the same order).
 */
export function sampleView(
  shape: CaseShape,
  recipe: string | undefined,
  options: SampleViewOptions = {},
): SampleView {
  const { seed = 0, sample = 0 } = options;
  for (const [k, v] of Object.entries({ seed, sample })) {
    if (!Number.isInteger(v) || v < 0) {
      throw new BadInputError(`The sample's ${k} must be a non-negative integer, got ${v}`);
    }
  }
  const version = recipeVersion(recipe);
  const overrides: Partial<SampleSpec> = {};
  if (options.crops !== undefined) overrides.crops = options.crops;
  if (options.grid !== undefined) overrides.grid = options.grid;
  if (options.roi !== undefined) {
    overrides.roi = options.roi;
    if (version === "v1") overrides.base = Math.round(options.roi * 1.5); // as pretrain does
  }
  let spec: SampleSpec;
  try {
    spec = sampleSpec(version, overrides);
  } catch (e) {
    throw new BadInputError((e as Error).message);
  }
  const g = sampleGeometry(shape, spec, sampleRng(seed, sample));
  const [sx, sy, sz] = g.regionStart, half = Math.floor(spec.base / 2), k = spec.grid ** 2;
  return {
    version,
    spec,
    seed,
    sample,
    regionStart: g.regionStart,
    region: g.region,
    bases: Array.from({ length: k }, (_, b) => [
      sx + Math.floor(b / spec.grid) * spec.base,
      sy + (b % spec.grid) * spec.base,
      sz,
    ]),
    crops: g.centres.map(([cx, cy], c) => ({
      start: [sx + cx - half, sy + cy - half, sz],
      labels: [...g.labels.subarray(c * k, (c + 1) * k)],
    })),
  };
}
