// `cache preview`: PNG images of cached cases (three orthogonal mid-slices, shown in
// millimetres), one case or a contact sheet of many with their names, to check by eye.
import { encode } from "fast-png";
import { CacheReader, type CacheReaderOptions } from "../read/cache_reader.ts";
import { UsageError } from "../errors.ts";
import { noSuchCase } from "./inspect.ts";
import { drawText, textHeight, textWidth } from "./_font.ts";

/** Options of {@linkcode renderPreview}. */
export interface PreviewOptions {
  /**
   * Height in pixels of each case's row of slices; one case keeps its size in
   * millimetres (one pixel per smallest voxel spacing) when absent.
   * @default {160 for several cases}
   */
  tileHeight?: number;
  /** Cases per row of a contact sheet. @default {about the square root of the count} */
  columns?: number;
  /** Write each case's name above its slices. @default {true} */
  labels?: boolean;
  /** Outline a padded thin series' own voxels (dashed, grey {@linkcode OUTLINE}). @default {true} */
  outline?: boolean;
}

/** A grey image, one byte a pixel, rows top to bottom. */
interface Grey {
  width: number;
  height: number;
  data: Uint8Array;
}

const GAP = 4;
const PAD = 6;
const FONT = 2;
const SEPARATOR = 48;
/** The dashed outline of the image's own voxels inside zero padding. */
export const OUTLINE = 160;

/** A box of voxels: `[from, to)` per axis. */
type Box3 = [number, number][];

/**
 * The voxels that came from the image, inside the zeros the recipe's pad step added
 * (`floor(d / 2)` before, the rest after): from the crop box the case records and the pad
 * step's minimum shape. `undefined` when nothing was padded or the case does not say.
 */
export function paddingBox(
  shape: readonly number[],
  attributes: Record<string, unknown>,
): Box3 | undefined {
  const crop = attributes.crop_box as { start?: number[]; end?: number[] } | null | undefined;
  const steps = (attributes.recipe as { steps?: { op: string }[] } | undefined)?.steps ?? [];
  const ops = steps.map((st) => st.op);
  const pad = steps.find((st) => st.op === "pad") as { minShape?: number[] } | undefined;
  // Only a pad that directly follows the crop: the crop box is then the image's shape.
  if (
    !crop?.start || !crop.end || !pad?.minShape ||
    ops.indexOf("pad") !== ops.indexOf("cropForeground") + 1
  ) return undefined;
  const inner = crop.end.map((e, a) => e - crop.start![a]);
  if (inner.every((n, a) => n >= shape[a])) return undefined;
  return inner.map((n, a) => {
    const before = Math.floor(Math.max(0, shape[a] - n) / 2);
    return [before, before + n];
  });
}

function grey(width: number, height: number, fill = 0): Grey {
  return { width, height, data: new Uint8Array(width * height).fill(fill) };
}

function blit(dst: Grey, src: Grey, x: number, y: number): void {
  for (let r = 0; r < src.height; r++) {
    dst.data.set(src.data.subarray(r * src.width, (r + 1) * src.width), (y + r) * dst.width + x);
  }
}

/** `src` scaled to `height` (nearest neighbour), its aspect kept. */
function scaleTo(src: Grey, height: number): Grey {
  const width = Math.max(1, Math.round(src.width * height / src.height));
  const out = grey(width, height);
  for (let r = 0; r < height; r++) {
    const sr = Math.min(src.height - 1, Math.floor((r + 0.5) * src.height / height));
    for (let c = 0; c < width; c++) {
      const sc = Math.min(src.width - 1, Math.floor((c + 0.5) * src.width / width));
      out.data[r * width + c] = src.data[sr * src.width + sc];
    }
  }
  return out;
}

/**
 * One view of a slab: pixel (col, row) shows voxel `(u, v)` of the slab's two long axes,
 * counted from their far ends (radiological: patient right on the left, anterior and
 * superior at the top), each pixel `mm` millimetres.
 */
function view(
  values: Float32Array,
  dims: [number, number],
  spacing: [number, number],
  mm: number,
  box?: [number, number][],
): Grey {
  const [nu, nv] = dims;
  const w = Math.max(1, Math.round(nu * spacing[0] / mm));
  const h = Math.max(1, Math.round(nv * spacing[1] / mm));
  const out = grey(w, h);
  for (let r = 0; r < h; r++) {
    const v = nv - 1 - Math.min(nv - 1, Math.floor((r + 0.5) * nv / h));
    for (let c = 0; c < w; c++) {
      const u = nu - 1 - Math.min(nu - 1, Math.floor((c + 0.5) * nu / w));
      const x = values[u * nv + v];
      out.data[r * w + c] = x <= 0 ? 0 : x >= 1 ? 255 : Math.round(x * 255);
      if (box && (r + c) % 6 < 3 && onEdge(u, v, box)) out.data[r * w + c] = OUTLINE;
    }
  }
  return out;
}

/** Whether voxel `(u, v)` lies on the edge of `box` (the first or last row of a side). */
function onEdge(u: number, v: number, [[u0, u1], [v0, v1]]: [number, number][]): boolean {
  const inU = u >= u0 && u < u1, inV = v >= v0 && v < v1;
  return (inV && (u === u0 || u === u1 - 1)) || (inU && (v === v0 || v === v1 - 1));
}

/**
 * The axial, coronal and sagittal mid-slices of a case side by side, in mm; a thin series
 * padded to the recipe's minimum shape gets the outline of its own voxels, so the padding
 * is not taken for air.
 */
async function caseStrip(reader: CacheReader, name: string, outline = true): Promise<Grey> {
  const c = await reader.openCase(name);
  const [X, Y, Z] = c.shape;
  const a = c.attributes.affine;
  const sp = [0, 1, 2].map((j) => a ? Math.hypot(a[0][j], a[1][j], a[2][j]) || 1 : 1) as [
    number,
    number,
    number,
  ];
  const mm = Math.min(...sp);
  const mx = X >> 1, my = Y >> 1, mz = Z >> 1;
  const [ax, co, sa] = await Promise.all([
    reader.readCrop(name, [0, 0, mz], [X, Y, 1]),
    reader.readCrop(name, [0, my, 0], [X, 1, Z]),
    reader.readCrop(name, [mx, 0, 0], [1, Y, Z]),
  ]);
  const box = outline ? paddingBox(c.shape, c.attributes as Record<string, unknown>) : undefined;
  const views = [
    view(ax.data, [X, Y], [sp[0], sp[1]], mm, box && [box[0], box[1]]),
    view(co.data, [X, Z], [sp[0], sp[2]], mm, box && [box[0], box[2]]),
    view(sa.data, [Y, Z], [sp[1], sp[2]], mm, box && [box[1], box[2]]),
  ];
  // All three at the same scale (mm), top-aligned.
  const height = Math.max(...views.map((v) => v.height));
  const width = views.reduce((s, v) => s + v.width, 0) + GAP * (views.length - 1);
  const strip = grey(width, height);
  let x = 0;
  for (const v of views) {
    blit(strip, v, x, 0);
    x += v.width;
    if (x < width) {
      for (let r = 0; r < height; r++) {
        strip.data.fill(SEPARATOR, r * width + x, r * width + x + GAP);
      }
    }
    x += GAP;
  }
  return strip;
}

/**
 * A PNG (8-bit grey) of cached cases: for each, the axial, coronal and sagittal slices
 * through its centre, in millimetres (radiological orientation: patient right on the
 * left, anterior and superior up), values 0..1 as black..white, its name above (in
 * capitals, a built-in 3 x 5 font). One case gives one row; several a contact sheet.
 *
 * @example A contact sheet of the first 16 cases
 * ```ts ignore
 * const reader = await CacheReader.open("ct.zarr");
 * const names = (await reader.list()).slice(0, 16).map((c) => c.path);
 * await Deno.writeFile("sheet.png", await renderPreview(reader, names));
 * ```
 */
export async function renderPreview(
  reader: CacheReader,
  cases: readonly string[],
  options: PreviewOptions = {},
): Promise<Uint8Array> {
  if (cases.length === 0) throw new RangeError("No case to preview");
  const labels = options.labels ?? true;
  const tileHeight = options.tileHeight ?? (cases.length > 1 ? 160 : undefined);
  const strips: Grey[] = [];
  for (const name of cases) {
    const s = await caseStrip(reader, name, options.outline);
    strips.push(tileHeight && s.height !== tileHeight ? scaleTo(s, tileHeight) : s);
  }
  const names = cases.map((n) => n.replace(/^\/+/, ""));
  const label = labels ? textHeight(FONT) + PAD : 0;
  const tileW = Math.max(
    ...strips.map((s) => s.width),
    ...(labels ? names.map((n) => textWidth(n, FONT)) : [0]),
  );
  const tileH = Math.max(...strips.map((s) => s.height)) + label;
  const columns = Math.max(
    1,
    Math.min(cases.length, options.columns ?? Math.ceil(Math.sqrt(cases.length))),
  );
  const rows = Math.ceil(cases.length / columns);
  const sheet = grey(columns * (tileW + PAD) + PAD, rows * (tileH + PAD) + PAD);
  strips.forEach((s, i) => {
    const x = PAD + (i % columns) * (tileW + PAD),
      y = PAD + Math.floor(i / columns) * (tileH + PAD);
    if (labels) drawText(sheet.data, sheet.width, x, y, names[i], FONT, 255);
    blit(sheet, s, x, y + label);
  });
  return encode({
    width: sheet.width,
    height: sheet.height,
    data: sheet.data,
    channels: 1,
    depth: 8,
  });
}

/** Options of {@linkcode previewCache}: which cases, and how to reach the cache. */
export interface PreviewCacheOptions extends PreviewOptions, CacheReaderOptions {
  /** The one case to draw (`dataset/name`); a contact sheet when absent. */
  case?: string;
  /** Cases on the contact sheet (the first ones of the cache or dataset). @default {16} */
  cases?: number;
  /** Draw the contact sheet of this dataset group only. */
  dataset?: string;
}

/**
 * The PNG of {@linkcode renderPreview} for the cache at `location` (a folder or a URL):
 * one case, or a contact sheet of the first `cases` usable cases (of `dataset`). Throws a
 * `UsageError` when there is no case to draw, no such case or no such dataset (naming
 * those there are).
 */
export async function previewCache(
  location: string,
  options: PreviewCacheOptions = {},
): Promise<{ png: Uint8Array; cases: string[] }> {
  const reader = await CacheReader.open(location, options);
  let names: string[];
  if (options.case !== undefined) {
    // A case the listing lacks is a mistake of the command line: name the closest ones.
    const listed = await reader.list().catch(() => undefined);
    const full = listed?.filter((c) => c.name).map((c) => `${c.dataset}/${c.name}`);
    const spec = options.case.replace(/^\/+/, "");
    if (full && !full.includes(spec)) throw noSuchCase(reader.location, spec, full);
    names = [options.case];
  } else {
    const all = (await reader.list()).filter((c) => !c.error);
    const of = options.dataset === undefined
      ? all
      : all.filter((c) => c.dataset === options.dataset);
    if (!of.length) {
      const groups = [...new Set(all.map((c) => c.dataset))];
      throw new UsageError(
        options.dataset === undefined
          ? `${location} holds no case to preview`
          : `--dataset ${options.dataset}: no such dataset in ${location}; its datasets: ${
            groups.join(", ") || "none"
          }`,
      );
    }
    names = of.slice(0, options.cases ?? 16).map((c) => `${c.dataset}/${c.name}`);
  }
  return { png: await renderPreview(reader, names, options), cases: names };
}
