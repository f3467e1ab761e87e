// One VoCo training sample from one cached volume, as the references build it: a region
// (the volume zero-padded where smaller, as `SpatialPadd` + `RandSpatialCropd`), the base
// crops on its grid, random crops with their overlap labels, each crop resized to the
// model's roi (v1) and augmented (flips, rot90, intensity shift). Pure geometry and
// numerics over a `readBox` callback, so it runs the same in a worker or a test.
import type { Shape3, Volume } from "../../prep/volume.ts";
import { cropToBox } from "../../prep/transforms/crop.ts";
import { resizeToShape } from "../../prep/transforms/resize.ts";
import { flipAxis } from "./flip.ts";
import { rotate90 } from "./rotate90.ts";
import { shiftIntensity } from "./shift_intensity.ts";
import type { Rng } from "../rng.ts";

/** How samples are cut; {@linkcode sampleSpec} gives each recipe's defaults. */
export interface SampleSpec {
  /** Model input edge in voxels (64). */
  roi: number;
  /** Edge of the base and random crops in cache voxels (64 in v2, 96 in v1). */
  base: number;
  /** Base crops per side of the region (3 in v2, 4 in v1). */
  grid: number;
  /** Random crops per volume (`--sw-batch-size`). */
  crops: number;
  /** Augment each crop (flips, rot90, intensity shift). */
  augment: boolean;
  /** Probability of the intensity shift (0.5 in v2, 0.1 in v1). */
  shiftProb: number;
}

/** The defaults of a VoCo version (`v2`: 64³ crops on a 3 x 3 grid; `v1`: 96³ on 4 x 4). */
export function sampleSpec(version: "v1" | "v2", overrides: Partial<SampleSpec> = {}): SampleSpec {
  const base = version === "v2"
    ? { roi: 64, base: 64, grid: 3, crops: 2, augment: true, shiftProb: 0.5 }
    : { roi: 64, base: 96, grid: 4, crops: 2, augment: true, shiftProb: 0.1 };
  const spec = { ...base, ...overrides };
  if (version === "v2" && overrides.roi !== undefined && overrides.base === undefined) {
    spec.base = spec.roi;
  }
  for (const k of ["roi", "base", "grid", "crops"] as const) {
    if (!Number.isInteger(spec[k]) || spec[k] < 1) {
      throw new RangeError(`Sample ${k} must be a positive integer, got ${spec[k]}`);
    }
  }
  if (spec.grid < 2) {
    throw new RangeError(`The grid needs at least 2 bases per side, got ${spec.grid}`);
  }
  return spec;
}

/**
 * The sample spec of a run's settings: crops of `roi`, a `grid` of bases, `swBatchSize`
 * random crops, augmented or not; v1's bases are 1.5 x roi before their resize.
 */
export function runSampleSpec(
  c: { version: "v1" | "v2"; roi: number; grid: number; swBatchSize: number; augment: boolean },
): SampleSpec {
  const base = c.version === "v1" ? { base: Math.round(c.roi * 1.5) } : {};
  return sampleSpec(c.version, {
    roi: c.roi,
    grid: c.grid,
    crops: c.swBatchSize,
    augment: c.augment,
    ...base,
  });
}

/** The region a sample is cut from: `grid * base` square in x-y, `base` deep. */
export function regionShape(spec: SampleSpec): Shape3 {
  return [spec.grid * spec.base, spec.grid * spec.base, spec.base];
}

/**
 * Where the region starts in the volume: where the volume is smaller, centred on the
 * zero-padded volume (`floor(d / 2)` before, so the start is negative); else uniform.
 */
export function regionStart(shape: Shape3, region: Shape3, rng: Rng): Shape3 {
  return shape.map((n, a) =>
    n <= region[a] ? -Math.floor((region[a] - n) / 2) : rng.int(0, n - region[a] + 1)
  ) as Shape3;
}

/**
 * Overlap labels of a random crop centred at `(cx, cy)` against each base crop
 * `k = i * grid + j` (x index i, y index j): the overlap area over the crop's area, x-y
 * plane only (the references' `get_position_label`).
 */
export function positionLabels(cx: number, cy: number, base: number, grid: number): Float32Array {
  const half = Math.floor(base / 2);
  const out = new Float32Array(grid * grid);
  for (let i = 0; i < grid; i++) {
    for (let j = 0; j < grid; j++) {
      const dx = Math.min((i + 1) * base, cx + half) - Math.max(i * base, cx - half);
      const dy = Math.min((j + 1) * base, cy + half) - Math.max(j * base, cy - half);
      out[i * grid + j] = dx <= 0 || dy <= 0 ? 0 : (dx * dy) / (base * base);
    }
  }
  return out;
}

/**
 * Reads a box of the volume; voxels outside it are zero. `into`, when given, is memory
 * the values may be read into (at least the box's voxel count), reused between samples.
 */
export type ReadBox = (
  start: Shape3,
  size: Shape3,
  into?: Float32Array,
) => Promise<Volume<Float32Array>>;

/**
 * Region buffers kept for the next samples of this thread: a region read into memory
 * already touched skips the page faults of a fresh 9.4 MB array, about a fifth of a
 * 192 × 192 × 64 read (`deno task bench cache`). One per sample in flight, a few kept.
 */
const regions: Float32Array[] = [];
const REGIONS_KEPT = 4;

function takeRegion(n: number): Float32Array {
  const i = regions.findIndex((b) => b.length === n);
  return i >= 0 ? regions.splice(i, 1)[0] : new Float32Array(n);
}

function giveRegion(buffer: Float32Array): void {
  if (regions.length >= REGIONS_KEPT) regions.shift();
  regions.push(buffer);
}

/** A built sample: its crops, labels and where they came from. */
export interface VocoSample {
  /** `(crops + grid²)` crops of `roi³` voxels in C order `[x, y, z]`: random crops, then bases. */
  crops: Float32Array;
  /** `[crops, grid²]` overlap labels. */
  labels: Float32Array;
  /** Where the region started in the volume and the random crops' x-y centres in it. */
  geometry: { regionStart: Shape3; centres: [number, number][] };
}

function augment(crop: Volume<Float32Array>, spec: SampleSpec, rng: Rng): Volume<Float32Array> {
  let v = crop;
  for (const axis of [0, 1, 2] as const) if (rng.chance(0.2)) v = flipAxis(v, axis);
  const k = rng.int(1, 4);
  if (rng.chance(0.2)) v = rotate90(v, k);
  const offset = rng.range(-0.1, 0.1);
  if (rng.chance(spec.shiftProb)) v = shiftIntensity(v, offset);
  return v;
}

/** Where a sample's crops lie in its volume: what {@linkcode sampleGeometry} draws. */
export interface SampleGeometry {
  /** The region's first voxel in the volume (negative where the volume is zero-padded). */
  regionStart: Shape3;
  /** The region's size in voxels (`grid * base` square, `base` deep). */
  region: Shape3;
  /** The random crops' x-y centres, in region voxels. */
  centres: [number, number][];
  /** `[crops, grid²]` overlap labels of the random crops against the base crops. */
  labels: Float32Array;
}

/**
 * The first draws of a sample, from `rng` in the references' order: the region's start,
 * then the random crops' centres uniform in `[base/2, region - base/2)`, with their
 * overlap labels. {@linkcode buildSample} starts with it; the viewer draws it.
 */
export function sampleGeometry(shape: Shape3, spec: SampleSpec, rng: Rng): SampleGeometry {
  const region = regionShape(spec);
  const start = regionStart(shape, region, rng);
  const half = Math.floor(spec.base / 2);
  const centres: [number, number][] = [];
  const labels = new Float32Array(spec.crops * spec.grid * spec.grid);
  for (let c = 0; c < spec.crops; c++) {
    const cx = rng.int(half, region[0] - half), cy = rng.int(half, region[1] - half);
    centres.push([cx, cy]);
    labels.set(positionLabels(cx, cy, spec.base, spec.grid), c * spec.grid * spec.grid);
  }
  return { regionStart: start, region, centres, labels };
}

/**
 * Builds one sample of a volume of `shape` with `rng` (the references' draw order: the
 * region, the random crops' centres uniform in `[base/2, region - base/2)`, then the
 * augmentations of the random crops and of the bases).
 */
export async function buildSample(
  shape: Shape3,
  readBox: ReadBox,
  spec: SampleSpec,
  rng: Rng,
): Promise<VocoSample> {
  const { regionStart: start, region, centres, labels } = sampleGeometry(shape, spec, rng);
  const buffer = takeRegion(region[0] * region[1] * region[2]);
  try {
    return buildFrom(await readBox(start, region, buffer), spec, rng, centres, labels, start);
  } finally {
    giveRegion(buffer); // the crops below are copies: nothing keeps the region's memory
  }
}

/** The crops of a sample from its region's values. */
function buildFrom(
  volume: Volume<Float32Array>,
  spec: SampleSpec,
  rng: Rng,
  centres: [number, number][],
  labels: Float32Array,
  start: Shape3,
): VocoSample {
  const half = Math.floor(spec.base / 2);
  const boxes: Shape3[] = [
    ...centres.map(([cx, cy]) => [cx - half, cy - half, 0] as Shape3),
    ...Array.from(
      { length: spec.grid * spec.grid },
      (_, k) => [Math.floor(k / spec.grid) * spec.base, (k % spec.grid) * spec.base, 0] as Shape3,
    ),
  ];
  const n = spec.roi ** 3;
  const crops = new Float32Array(boxes.length * n);
  boxes.forEach((b, i) => {
    let crop = cropToBox(volume, {
      start: b,
      end: [b[0] + spec.base, b[1] + spec.base, b[2] + spec.base],
    });
    if (spec.base !== spec.roi) {
      crop = resizeToShape(crop, { shape: [spec.roi, spec.roi, spec.roi] });
    }
    if (spec.augment) crop = augment(crop, spec, rng);
    crops.set(crop.data, i * n);
  });
  return { crops, labels, geometry: { regionStart: start, centres } };
}
