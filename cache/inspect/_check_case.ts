// The checks `cache verify` runs on one case: its metadata against what the writer writes
// (every field a reader obeys), its attributes, its integrity record and fingerprint, each
// shard index, and every chunk read (checksum, position, decoded size).
import { openCaseArray } from "../read/read_case.ts";
import { describeChunkError } from "../read/checked_store.ts";
import { caseFingerprint, settingsHash } from "../format/fingerprint.ts";
import { decodeShardIndex, shardIndexBytes } from "../codecs/shard.ts";
import { chunkKey, storedKeys } from "../format/stored_keys.ts";
import { chunkGrids, firstDifference, integrityProblems } from "../format/integrity.ts";
import { arrayMetadata, type BloscShuffle } from "../write/write_case.ts";
import type { Compressor, Layout } from "../format/format.ts";
import type { StorageDtype } from "../format/quantize.ts";
import type { CaseFiles } from "./_case_files.ts";

/** What verifying one node of a cache (a case, a dataset group, the root) found. */
export interface CaseCheck {
  /** Dataset group (empty for the cache's root). */
  dataset: string;
  /** Case name (empty for a dataset group's own metadata, and for the root). */
  name: string;
  /**
   * What was checked: a case, a dataset group's metadata, or the cache's root (its
   * consolidated metadata).
   * @default {"case"}
   */
  node?: "case" | "group" | "cache";
  /** What is wrong; empty when sound. */
  problems: string[];
  /** Remarks that are not damage (a case written before checksums existed). */
  notes: string[];
  /** Bytes of the case's files (at a URL: of those read, the whole files). */
  bytes: number;
  /** Chunks read (inner chunks of a shard). */
  chunks: number;
}

type Json = Record<string, unknown>;

const DTYPES = ["uint8", "uint16", "float32"];
const isNum = (x: unknown) => typeof x === "number" && Number.isFinite(x);
const show = (v: unknown) => JSON.stringify(v) ?? "nothing";

/** Fields a Zarr v3 array's `zarr.json` holds, as the writer writes them. */
const ARRAY_FIELDS = new Set([
  "zarr_format",
  "node_type",
  "shape",
  "data_type",
  "chunk_grid",
  "chunk_key_encoding",
  "codecs",
  "fill_value",
  "dimension_names",
  "attributes",
]);

/** The value at a path (`codecs[0].configuration.endian`) of `v`. */
function at(v: unknown, path: string): unknown {
  for (const part of path.match(/[^.[\]]+/g) ?? []) {
    v = v && typeof v === "object" ? (v as Json)[part] : undefined;
  }
  return v;
}

/**
 * Every field a reader obeys, against what the writer writes for the recorded storage
 * (dtype, compressor, level, chunk edge, layout) and shape: byte order, compressor
 * settings, sharding, chunk grid and key encoding, fill value. Nothing when the case
 * records no usable storage (not written by the toolkit's writer).
 */
function writerProblems(meta: Json): string[] {
  const s = (meta.attributes as Json | undefined)?.storage as Json | undefined;
  const shape = meta.shape;
  if (!s || !Array.isArray(shape) || !DTYPES.includes(s.dtype as string)) return [];
  if (typeof s.compressor !== "string" || !isNum(s.level) || !isNum(s.chunk)) return [];
  let expected: Json;
  try {
    expected = arrayMetadata(shape as number[], {
      dtype: s.dtype as StorageDtype,
      compressor: s.compressor as Compressor,
      level: s.level as number,
      chunk: s.chunk as number,
      layout: (s.layout ?? "chunked") as Layout,
      crc32c: JSON.stringify(meta.codecs ?? null).includes('"crc32c"'),
      shuffle: s.shuffle as BloscShuffle | undefined,
    }).meta;
  } catch (e) {
    return [
      `attributes: storage ${show(s)} is not what the writer takes (${(e as Error).message})`,
    ];
  }
  const p: string[] = [];
  for (const key of Object.keys(expected)) {
    const where = firstDifference(meta[key], expected[key], key);
    if (where) {
      p.push(
        `zarr.json: ${where} is ${show(at(meta, where))}; the writer writes ` +
          `${show(at(expected, where))} for storage ${show(s)}`,
      );
    }
  }
  for (const key of Object.keys(meta)) {
    if (!ARRAY_FIELDS.has(key)) p.push(`zarr.json: unexpected field ${key} ${show(meta[key])}`);
  }
  return p;
}

/**
 * The problems of a case's metadata and attributes (read at `path`), and its fingerprint
 * recomputed; `notes` gets what is not damage (a case written before integrity records).
 */
export async function checkMetadata(
  meta: Json,
  path: string,
  notes: string[],
): Promise<string[]> {
  const p: string[] = [];
  const shape = meta.shape as unknown[];
  if (meta.node_type !== "array") p.push(`zarr.json: node_type is ${meta.node_type}, not array`);
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((n) => Number.isInteger(n))) {
    p.push(`zarr.json: shape ${show(shape)} is not three integers`);
  }
  if (!DTYPES.includes(meta.data_type as string)) {
    p.push(`zarr.json: data_type ${meta.data_type} is not one of ${DTYPES.join(", ")}`);
  }
  const a = (meta.attributes ?? {}) as Json;
  const affine = a.affine as unknown[][];
  const isAffine = Array.isArray(affine) && affine.length === 4 &&
    affine.every((r) => Array.isArray(r) && r.length === 4 && r.every(isNum));
  if (!isAffine) p.push("attributes: affine is not a 4 x 4 matrix");
  const spacing = a.spacing as number[];
  if (!Array.isArray(spacing) || spacing.length !== 3 || !spacing.every(isNum)) {
    p.push("attributes: spacing is not three numbers");
  } else if (isAffine) {
    // The writer records the affine's column norms.
    const norms = [0, 1, 2].map((c) => Math.hypot(...[0, 1, 2].map((r) => affine[r][c] as number)));
    if (norms.some((n, i) => !(Math.abs(n - spacing[i]) <= 1e-6 * Math.max(1, n)))) {
      p.push(`attributes: spacing ${show(spacing)} is not the affine's voxel size ${show(norms)}`);
    }
  }
  for (const key of ["source", "source_sha256", "fingerprint"]) {
    if (typeof a[key] !== "string") p.push(`attributes: ${key} is missing`);
  }
  if (!a.recipe || typeof a.recipe !== "object") p.push("attributes: recipe is missing");
  if (meta.data_type !== "float32" && !isNum(a.scale_factor)) {
    p.push(`attributes: scale_factor is missing for ${meta.data_type} values`);
  }
  if (meta.data_type !== "float32" && a.add_offset !== undefined && !isNum(a.add_offset)) {
    p.push(`attributes: add_offset ${show(a.add_offset)} is not a number`);
  }
  const storage = a.storage as Json | undefined;
  if (storage && storage.dtype !== meta.data_type) {
    p.push(`attributes: storage.dtype ${storage.dtype} but the array holds ${meta.data_type}`);
  }
  p.push(...writerProblems(meta));
  if (typeof a.fingerprint === "string" && a.recipe && storage && a.source_sha256) {
    const settings = await settingsHash({ recipe: a.recipe, storage });
    const expected = await caseFingerprint(settings, a.source_sha256 as string);
    if (expected !== a.fingerprint) {
      p.push(
        `attributes: fingerprint ${a.fingerprint.slice(0, 12)}... does not match its recipe, ` +
          `storage and source_sha256 (${expected.slice(0, 12)}...)`,
      );
    }
  }
  const integrity = await integrityProblems(meta, path);
  p.push(...integrity.map((x) => `zarr.json: ${x}`));
  if (!(a.voco_integrity && typeof a.voco_integrity === "object")) {
    notes.push(
      "written before integrity records (an edited field, a moved chunk or a copied case " +
        "folder cannot be told; prep rebuilds it with them after cache rm)",
    );
  }
  return p;
}

/**
 * The checks of one case whose metadata `meta` was read, through its
 * {@linkcode CaseFiles}: its metadata (see {@linkcode checkMetadata}), each shard index
 * (checksum, bounds, one entry per chunk), and every chunk read, its checksum and
 * position checked and decoded to its full size.
 */
export async function checkCaseFiles(
  files: CaseFiles,
  path: `/${string}`,
  meta: Json,
  check: CaseCheck,
  maxProblems: number,
): Promise<void> {
  check.problems.push(...await checkMetadata(meta, path, check.notes));
  if (check.problems.length) return;
  const codecs = meta.codecs as { name: string; configuration?: Json }[];
  const sharding = codecs.find((c) => c.name === "sharding_indexed")?.configuration;
  const chunkCodecs = (sharding?.codecs ?? codecs) as { name: string }[];
  if (!chunkCodecs.some((c) => c.name === "crc32c")) {
    check.notes.push("written before chunk checksums (prep rebuilds it with them when asked)");
  }
  const grids = chunkGrids(meta);
  if (!grids) {
    check.problems.push("zarr.json: its chunk grid does not fit its shape");
    return;
  }
  const shape = meta.shape as number[];
  const outer = (meta.chunk_grid as { configuration: { chunk_shape: number[] } }).configuration
    .chunk_shape;
  const { grid, chunk: inner } = grids;
  const count = grid.reduce((x, y) => x * y, 1);
  const stored = (meta.attributes as Json).stored_chunks;
  if (stored !== undefined && stored !== count) {
    check.problems.push(`attributes: stored_chunks ${stored}, but the array has ${count} chunks`);
  }
  // Read ahead (at a URL) every stored file, in the order the checks below use them.
  files.prefetch(storedKeys(meta));
  if (sharding) {
    // Each shard's index: checksum, one entry per inner chunk, inside the file.
    const shardGrid = shape.map((n, a) => Math.ceil(n / outer[a]));
    const perShard = outer.reduce((acc, n, a) => acc * (n / inner[a]), 1);
    for (let i = 0; i < shardGrid[0]; i++) {
      for (let j = 0; j < shardGrid[1]; j++) {
        for (let k = 0; k < shardGrid[2]; k++) {
          const key = chunkKey(meta, [i, j, k]);
          let size: number | undefined;
          try {
            size = await files.size(key);
          } catch (e) {
            check.problems.push(`shard ${key}: ${(e as Error).message}`);
            continue;
          }
          if (size === undefined) {
            check.problems.push(`shard ${key} is ${files.missing(key)}`);
            continue;
          }
          const n = shardIndexBytes(perShard);
          if (size < n) {
            check.problems.push(`shard ${key}: ${size} bytes, shorter than its index (${n})`);
            continue;
          }
          const tail = await files.tail(key, size, n);
          try {
            decodeShardIndex(tail, perShard, size - n);
          } catch (e) {
            check.problems.push(`shard index of ${key}: ${(e as Error).message}`);
          }
        }
      }
    }
    if (check.problems.length) return;
  }
  const arr = await openCaseArray(files.store, path);
  const size = inner.reduce((a, b) => a * b, 1);
  const chunkGrid = shape.map((n, a) => Math.ceil(n / inner[a]));
  for (let i = 0; i < chunkGrid[0] && check.problems.length < maxProblems; i++) {
    for (let j = 0; j < chunkGrid[1] && check.problems.length < maxProblems; j++) {
      for (let k = 0; k < chunkGrid[2] && check.problems.length < maxProblems; k++) {
        try {
          const chunk = await arr.getChunk([i, j, k]);
          check.chunks++;
          if ((chunk.data as ArrayLike<number>).length !== size) {
            check.problems.push(
              `chunk [${i},${j},${k}] decodes to ${(chunk.data as ArrayLike<number>).length} ` +
                `values, not ${size}`,
            );
          }
        } catch (e) {
          check.problems.push(describeChunkError(e, [i, j, k]));
        }
      }
    }
  }
}
