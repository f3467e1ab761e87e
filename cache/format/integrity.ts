// What binds a case's data to its metadata, its name and each chunk's position: a record
// in the case's own attributes (`voco_integrity`) that the writer seals and that the
// reader and `cache verify` check, and the digest of the consolidated copy. Plain Zarr
// attributes: any Zarr v3 reader ignores them.
//
//   attributes.voco_integrity = {
//     version: 1,
//     case: "ds/a",                      the name it was written as
//     chunks_crc32c: "1a2b3c4d...",      the CRC-32C each chunk ends with, 8 hex digits a
//                                        chunk, C order of the (inner) chunk grid
//     metadata_sha256: "..."             SHA-256 of the whole zarr.json without this field
//   }
//   root attributes.voco_cache.consolidated_sha256: SHA-256 over every consolidated node's
//   name and digest, so that a node added to or dropped from the copy is seen.

/** Name of the attribute holding a case's {@linkcode IntegrityRecord}. */
export const INTEGRITY_KEY = "voco_integrity";

/** What a case's `voco_integrity` attribute holds. */
export interface IntegrityRecord {
  /** Version of this record. */
  version: 1;
  /** The case it was written as, `dataset/case`; absent when written without a name. */
  case?: string;
  /** The CRC-32C every chunk ends with, 8 hex digits each, in C order of the chunk grid. */
  chunks_crc32c: string;
  /** SHA-256 (hex) of the metadata as {@linkcode canonicalJson} writes it, this field left out. */
  metadata_sha256?: string;
}

type Json = Record<string, unknown>;

/**
 * JSON with object keys sorted and no spaces: equal metadata always gives equal text,
 * whatever order or indentation a file has.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const o = value as Json;
  const parts: string[] = [];
  for (const k of Object.keys(o).sort()) {
    if (o[k] !== undefined) parts.push(`${JSON.stringify(k)}:${canonicalJson(o[k])}`);
  }
  return `{${parts.join(",")}}`;
}

/** Hex SHA-256 of a string. */
async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The record of a case's metadata, when it has one (written by this toolkit since v0.1). */
export function integrityRecord(meta: Json): Partial<IntegrityRecord> | undefined {
  const r = (meta.attributes as Json | undefined)?.[INTEGRITY_KEY];
  return r && typeof r === "object" && !Array.isArray(r)
    ? r as Partial<IntegrityRecord>
    : undefined;
}

/** SHA-256 of an array's metadata without its `metadata_sha256` (what the writer seals). */
export function metadataSha256(meta: Json): Promise<string> {
  const attributes = meta.attributes as Json;
  const { metadata_sha256: _, ...record } = attributes[INTEGRITY_KEY] as Json;
  return sha256(canonicalJson({ ...meta, attributes: { ...attributes, [INTEGRITY_KEY]: record } }));
}

/** The record's chunk checksums as numbers, or a reason when it cannot be read. */
export function recordedCrcs(record: Partial<IntegrityRecord>): Uint32Array | string {
  const hex = record.chunks_crc32c;
  if (typeof hex !== "string" || hex.length % 8 !== 0 || !/^[0-9a-f]*$/.test(hex)) {
    return "chunks_crc32c is not 8 hex digits per chunk";
  }
  const out = new Uint32Array(hex.length / 8);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(8 * i, 8 * i + 8), 16);
  return out;
}

/** The checksums of encoded chunks (each ends in its CRC-32C) as the record's hex. */
export function crcHex(chunks: readonly Uint8Array[]): string {
  return chunks.map((c) => {
    const n = c.length;
    const crc = (c[n - 4] | (c[n - 3] << 8) | (c[n - 2] << 16) | (c[n - 1] << 24)) >>> 0;
    return crc.toString(16).padStart(8, "0");
  }).join("");
}

/** The chunk grids of an array's metadata (what the record's checksums follow). */
export interface ChunkGrids {
  /** The (inner) chunks of the whole array along each axis, every one stored. */
  grid: number[];
  /** Inner chunks per shard along each axis, for a sharded array. */
  shardGrid?: number[];
  /** Shape of the unit a read decodes (the inner chunk of a sharded array). */
  chunk: number[];
}

/**
 * The chunk grids of `meta`, or `undefined` when its shape, chunk grid or sharding codec
 * cannot be used (the reader then refuses it). Shards cover whole inner chunks.
 */
export function chunkGrids(meta: Json): ChunkGrids | undefined {
  const shape = meta.shape, codecs = meta.codecs;
  const outer = ((meta.chunk_grid as Json | undefined)?.configuration as Json | undefined)
    ?.chunk_shape;
  const ints = (v: unknown, min: number): v is number[] =>
    Array.isArray(v) && v.every((n) => Number.isInteger(n) && n >= min);
  if (!ints(shape, 0) || !ints(outer, 1) || outer.length !== shape.length) return undefined;
  const sharding = Array.isArray(codecs)
    ? (codecs.find((c) => (c as Json)?.name === "sharding_indexed") as Json | undefined)
    : undefined;
  const inner = (sharding?.configuration as Json | undefined)?.chunk_shape;
  if (sharding && (!ints(inner, 1) || inner.length !== shape.length)) return undefined;
  const shardGrid = sharding ? outer.map((n, a) => n / (inner as number[])[a]) : undefined;
  if (shardGrid && !shardGrid.every(Number.isInteger)) return undefined;
  return {
    grid: shape.map((n, a) => Math.ceil(n / outer[a]) * (shardGrid?.[a] ?? 1)),
    shardGrid,
    chunk: sharding ? [...inner as number[]] : [...outer],
  };
}

/** Whether the names' parts end alike (`ds/a` and `/ds/a`, or `a` under a store at `ds`). */
function sameCase(recorded: string, path: string): boolean {
  const a = recorded.split("/").filter(Boolean), b = path.split("/").filter(Boolean);
  const n = Math.min(a.length, b.length);
  return a.slice(a.length - n).join("/") === b.slice(b.length - n).join("/");
}

/**
 * What is wrong with a case's record, read at `path` (`/ds/a`) of its store: its digest
 * does not match the metadata (a field was edited), it was written as another case (a
 * folder copied or moved), or its checksums do not fit its chunks. Empty when the
 * record holds, and when there is none (a case written before records: see
 * {@linkcode integrityRecord}).
 */
export async function integrityProblems(meta: Json, path: string): Promise<string[]> {
  const record = integrityRecord(meta);
  if (!record) return [];
  const grids = chunkGrids(meta);
  const chunks = grids ? grids.grid.reduce((a, b) => a * b, 1) : NaN;
  const p: string[] = [];
  if (typeof record.metadata_sha256 !== "string") p.push("its metadata_sha256 is missing");
  else if (await metadataSha256(meta) !== record.metadata_sha256) {
    p.push(
      "its metadata does not match the metadata_sha256 written with it (a field was edited " +
        "or damaged after writing)",
    );
  }
  if (record.case !== undefined && !sameCase(String(record.case), path)) {
    p.push(
      `it was written as case ${record.case}, not ${path.replace(/^\/+/, "")} (a case folder ` +
        `copied or moved)`,
    );
  }
  const crcs = recordedCrcs(record);
  if (typeof crcs === "string") p.push(crcs);
  else if (crcs.length !== chunks) {
    // (A shape or grid edited to another chunk count is caught by the digest too.)
    p.push(`it records ${crcs.length} chunk checksums, but the array has ${chunks} chunks`);
  }
  return p;
}

/**
 * The digest of a consolidated copy (its `metadata` member): SHA-256 over each node's
 * name and the digest of its metadata (a case's `metadata_sha256`, else the SHA-256 of its
 * canonical JSON), names sorted. A node added, dropped or renamed changes it; so does an
 * edit of a node without a record. An edit of a case with a record is caught by its own
 * `metadata_sha256` when it is read.
 */
export async function consolidatedSha256(metadata: Record<string, Json>): Promise<string> {
  const lines: string[] = [];
  for (const key of Object.keys(metadata).sort()) {
    const sealed = integrityRecord(metadata[key])?.metadata_sha256;
    const digest = typeof sealed === "string" ? sealed : await sha256(canonicalJson(metadata[key]));
    lines.push(`${key}\t${digest}\n`);
  }
  return await sha256(lines.join(""));
}

/**
 * The first place where `a` and `b` differ, as a path (`attributes.scale_factor`,
 * `codecs[0].configuration.endian`), or `undefined` when they are equal.
 */
export function firstDifference(a: unknown, b: unknown, at = ""): string | undefined {
  if (a === b) return undefined;
  if (a === undefined || b === undefined) return at || "(the whole document)";
  if (
    a === null || b === null || typeof a !== "object" || typeof b !== "object" ||
    Array.isArray(a) !== Array.isArray(b)
  ) {
    return canonicalJson(a) === canonicalJson(b) ? undefined : at || "(the whole document)";
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      const d = firstDifference(a[i], b[i], `${at}[${i}]`);
      if (d) return d;
    }
    return undefined;
  }
  const ka = Object.keys(a as Json), kb = Object.keys(b as Json);
  for (const k of [...new Set([...ka, ...kb])].sort()) {
    const d = firstDifference((a as Json)[k], (b as Json)[k], at ? `${at}.${k}` : k);
    if (d) return d;
  }
  return undefined;
}
