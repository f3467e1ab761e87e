// The damage fuzzer's parts: small prepped caches, seeded damages of every kind the cache's
// promise covers, what the readers return (to compare with the sound cache), and the
// promise itself: after one damage, `cache verify` names the case, or nothing a reader
// returns has changed.
import { join, relative } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { main as prepMain } from "../../tasks/prep.ts";
import { makePhantom } from "../../prep/synthetic/phantom.ts";
import { writeNifti } from "../../prep/formats/write_nifti.ts";
import { CacheReader } from "../../cache/read/cache_reader.ts";
import { openCase, readCase } from "../../cache/read/read_case.ts";
import { type CaseCheck, verifyCache } from "../../cache/inspect/verify.ts";
import { serveCache } from "../../cache/store/serve.ts";
import { consolidate } from "../../cache/write/consolidate.ts";
import { VocoError } from "../../cache/errors.ts";
import type { CaseShape } from "../../cache/format/case_volume.ts";
import { assertEquals, runTask } from "../_helpers.ts";

/** A seeded random source (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const int = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

/** Every file of a cache below `root` (hidden folders left out), relative, sorted. */
export async function cacheFiles(root: string, dir = root): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    if (e.isDirectory) out.push(...await cacheFiles(root, p));
    else if (e.isFile) out.push(relative(root, p));
  }
  return out.sort();
}

/** Copies a folder tree (hidden folders left out). */
export async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.name.startsWith(".")) continue;
    if (e.isDirectory) await copyTree(join(from, e.name), join(to, e.name));
    else await Deno.copyFile(join(from, e.name), join(to, e.name));
  }
}

/** The sound caches the fuzzer damages copies of, and one to copy files from. */
export interface FuzzCaches {
  /** Variant name (`sharded`, `chunked+consolidated`, ...) to its folder. */
  variants: Record<string, string>;
  /** Variant name to a cache of the same layout and names, other volumes. */
  elsewhere: Record<string, string>;
}

/** Writes phantom CTs `case<i>.nii.gz` of `shape` with seeds from `seed`. */
async function phantoms(dir: string, shape: CaseShape, seed: number): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (let i = 0; i < 2; i++) {
    const v = makePhantom({ shape, spacingMm: [3, 3, 4], seed: seed + i });
    await Deno.writeFile(join(dir, `case${i}.nii.gz`), writeNifti(v));
  }
}

/**
 * Two-dataset caches (`alpha`, `beta`: two cases each, 32³ chunks) in both layouts, plain
 * and consolidated, prepped as a user would, under `dir`; and caches of other volumes
 * with the same names.
 */
export async function fuzzCaches(dir: string): Promise<FuzzCaches> {
  const inputs = {
    alpha: [[40, 36, 20], 1],
    beta: [[36, 44, 24], 7],
    alpha2: [[44, 32, 24], 21],
    beta2: [[32, 40, 20], 27],
  } as const;
  for (const [name, [shape, seed]] of Object.entries(inputs)) {
    await phantoms(join(dir, "in", name), [...shape], seed);
  }
  const variants: Record<string, string> = {}, elsewhere: Record<string, string> = {};
  for (const layout of ["sharded", "chunked"]) {
    for (const [out, suffix] of [[join(dir, layout), ""], [join(dir, `${layout}-other`), "2"]]) {
      for (const ds of ["alpha", "beta"]) {
        const r = await runTask(prepMain, [
          join(dir, "in", ds + suffix),
          "--out",
          out,
          "--quiet",
          "--dataset-name",
          ds,
          "--chunk",
          "32",
          "--layout",
          layout,
          "--compressor",
          Deno.env.get("VOCO_FUZZ_COMPRESSOR") ?? "blosc-zstd",
        ]);
        assertEquals(r.code, 0, r.text);
      }
    }
    const cons = join(dir, `${layout}+consolidated`), consOther = `${cons}-other`;
    await copyTree(join(dir, layout), cons);
    await copyTree(join(dir, `${layout}-other`), consOther);
    await consolidate(cons);
    await consolidate(consOther);
    variants[layout] = join(dir, layout);
    elsewhere[layout] = join(dir, `${layout}-other`);
    variants[`${layout}+consolidated`] = cons;
    elsewhere[`${layout}+consolidated`] = consOther;
  }
  return { variants, elsewhere };
}

/** What readers return of a cache: entry -> a digest of the value, or `!` and the error. */
export type Snapshot = Map<string, string>;

/** Hex SHA-256 of bytes. */
async function digest(bytes: Uint8Array | string): Promise<string> {
  const b = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  const d = await crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(d).slice(0, 12), (x) => x.toString(16).padStart(2, "0"))
    .join("");
}

/** A volume's data, shape and affine as one digest. */
async function volumeDigest(v: { data: Float32Array; shape: number[]; affine: number[][] }) {
  const bytes = new Uint8Array(v.data.buffer, v.data.byteOffset, v.data.byteLength);
  return `${v.shape.join("x")} ${JSON.stringify(v.affine)} ${await digest(bytes)}`;
}

/** Reads that the fuzzer compares: the error as `!<kind> <message>` when one is thrown. */
async function attempt(fn: () => Promise<string>): Promise<string> {
  try {
    return await fn();
  } catch (e) {
    const kind = e instanceof VocoError
      ? e.kind
      : e instanceof Deno.errors.NotFound
      ? "not-found"
      : `untagged ${(e as Error).name}`;
    return `!${kind} ${(e as Error).message}`;
  }
}

/**
 * What every reader returns of the cache at `root`, for the cases of `cases`
 * (`dataset/name`, those of the sound cache): `CacheReader` (its listing, a crop that
 * leaves the volume, the whole case, the attributes) and `readCase` / `openCase` on a
 * plain folder store (which read the case's own metadata, never the consolidated copy).
 */
export async function snapshot(root: string, cases: readonly string[]): Promise<Snapshot> {
  const out: Snapshot = new Map();
  let reader: CacheReader | undefined;
  const opened = await attempt(async () => (reader = await CacheReader.open(root), "ok"));
  out.set("open", opened);
  // A cache that cannot be opened: every read through it fails the same way.
  const via = (fn: () => Promise<string>) => reader ? attempt(fn) : Promise.resolve(opened);
  out.set(
    "list",
    await via(async () => {
      const listed = await reader!.list();
      for (const c of listed) {
        const key = `list ${c.dataset}/${c.name}`;
        out.set(key, c.error ? `!listed ${c.error}` : await digest(JSON.stringify(c)));
      }
      return String(listed.filter((c) => !c.error).length);
    }),
  );
  const store = new FileSystemStore(root);
  for (const name of cases) {
    const path = `/${name}` as const;
    out.set(
      `crop ${name}`,
      await via(async () =>
        await volumeDigest(await reader!.readCrop(name, [-3, 5, 2], [24, 20, 18]))
      ),
    );
    out.set(
      `whole ${name}`,
      await via(async () => {
        const c = await reader!.openCase(name);
        const v = await reader!.readCrop(name, [0, 0, 0], c.shape);
        return `${await volumeDigest(v)} ${await digest(JSON.stringify(c.attributes))}`;
      }),
    );
    out.set(
      `readCase ${name}`,
      await attempt(async () => {
        const v = await readCase(store, path);
        return `${await volumeDigest(v)} ${await digest(JSON.stringify(v.attributes))}`;
      }),
    );
    out.set(
      `openCase ${name}`,
      await attempt(async () =>
        await volumeDigest(await (await openCase(store, path)).readCrop([2, 3, 4], [10, 12, 8]))
      ),
    );
  }
  return out;
}

/** One damage done to a cache: what, and to which file(s). */
export interface Damage {
  /** The kind (`flip`, `truncate`, `field`, ...). */
  kind: string;
  /** What was done, precisely enough to do it again. */
  detail: string;
}

/** Every leaf of a JSON value with its path. */
function leaves(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  if (v && typeof v === "object") {
    const keys = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
    const inner = keys.flatMap((k) => leaves((v as Record<string, unknown>)[k], [...at, k]));
    return [at, ...inner];
  }
  return [at];
}

const STRINGS = [
  "big",
  "little",
  "lz4",
  "zstd",
  "blosc",
  "crc32c",
  "bytes",
  "float32",
  "uint16",
  "uint8",
  "int16",
  "float64",
  "start",
  "end",
  "array",
  "group",
  "v2",
  "default",
  ".",
  "shuffle",
  "noshuffle",
  "bitshuffle",
  "",
];

/** A value other than `v`, of its kind mostly. */
function mutate(r: Rand, v: unknown): unknown {
  if (typeof v === "number") {
    return pick(r, [v * 2, v + 1, -v, 0, v / 2, v - 1, v + 1e-6, 1e9, 3]);
  }
  if (typeof v === "string") {
    const s = pick(r, [...STRINGS, `${v}x`, v.slice(0, -1), v.toUpperCase()]);
    return s === v ? `${v}_` : s;
  }
  if (typeof v === "boolean") return !v;
  if (v === null) return pick(r, [0, "", {}]);
  if (Array.isArray(v)) {
    const c = [...v];
    const op = int(r, 0, 3);
    if (op === 0 && c.length) c.pop();
    else if (op === 1) c.push(c.length ? c[c.length - 1] : 1);
    else if (op === 2 && c.length > 1) c.reverse();
    else return null;
    return c;
  }
  if (v && typeof v === "object") {
    const c = { ...v as Record<string, unknown> };
    const keys = Object.keys(c);
    if (keys.length && r() < 0.6) delete c[pick(r, keys)];
    else c[pick(r, ["x", "configuration", "name", "must_understand"])] = 1;
    return c;
  }
  return 0;
}

/** `v` with the leaf at `path` replaced by `to`. */
function setAt(v: unknown, path: (string | number)[], to: unknown): unknown {
  if (!path.length) return to;
  const c = Array.isArray(v) ? [...v] : { ...v as Record<string, unknown> };
  (c as Record<string | number, unknown>)[path[0]] = setAt(
    (v as Record<string | number, unknown>)[path[0]],
    path.slice(1),
    to,
  );
  return c;
}

/** Edits that the issue names, as paths below a case's metadata and their new values. */
const NAMED: [string, (string | number)[], (v: unknown) => unknown][] = [
  ["endian big", ["codecs", "*endian"], () => "big"],
  ["cname", ["codecs", "*cname"], (v) => v === "zstd" ? "lz4" : "zstd"],
  ["typesize", ["codecs", "*typesize"], (v) => v === 2 ? 1 : 2],
  ["index_location", ["codecs", "*index_location"], () => "start"],
  ["fill_value", ["fill_value"], () => 1],
  ["scale_factor", ["attributes", "scale_factor"], (v) => (v as number) * 2],
  ["add_offset", ["attributes", "add_offset"], (v) => (v as number) + 0.5],
  ["shape", ["shape", 0], (v) => (v as number) - 1],
  ["affine", ["attributes", "affine", 0, 3], (v) => (v as number) + 10],
  ["spacing", ["attributes", "spacing", 1], (v) => (v as number) * 2],
  ["data_type", ["data_type"], (v) => v === "uint16" ? "int16" : "uint16"],
  ["data_type float32", ["data_type"], () => "float32"],
  ["stored_chunks", ["attributes", "stored_chunks"], (v) => (v as number) + 1],
  ["crc list", ["attributes", "voco_integrity", "chunks_crc32c"], (v) => (v as string).slice(8)],
  ["case name", ["attributes", "voco_integrity", "case"], () => "alpha/case9"],
  ["dimension_names", ["dimension_names", 0], () => "z"],
  ["chunk key separator", ["chunk_key_encoding", "configuration", "separator"], () => "."],
];

/** The paths of `meta` that a named edit's pattern (`*key` matches a key at any depth) names. */
function namedPaths(meta: unknown, pattern: (string | number)[]): (string | number)[][] {
  const all = leaves(meta);
  if (typeof pattern[1] === "string" && pattern[1].startsWith("*")) {
    const key = pattern[1].slice(1);
    return all.filter((p) => p[0] === pattern[0] && p.at(-1) === key);
  }
  return all.filter((p) => JSON.stringify(p) === JSON.stringify(pattern));
}

/**
 * Does one random damage to the cache at `root` (`elsewhere`: a cache of the same layout
 * and names, other volumes), of the kind `kind` when given; returns what was done, or
 * `undefined` when that kind found nothing to damage.
 */
export async function damage(
  root: string,
  elsewhere: string,
  r: Rand,
  kind?: string,
): Promise<Damage | undefined> {
  const files = await cacheFiles(root);
  const metas = files.filter((f) => f.endsWith("zarr.json"));
  const caseMetas = metas.filter((f) => f.split("/").length === 3);
  const data = files.filter((f) => !f.endsWith("zarr.json"));
  const k = kind ?? pick(r, KINDS);
  const read = (f: string) => Deno.readFile(join(root, f));
  const write = (f: string, b: Uint8Array) => Deno.writeFile(join(root, f), b);
  const json = async (f: string) => JSON.parse(await Deno.readTextFile(join(root, f)));
  const putJson = (f: string, v: unknown) =>
    Deno.writeTextFile(join(root, f), JSON.stringify(v, null, 2));
  const anyFile = () => r() < 0.7 ? pick(r, data) : pick(r, files);
  switch (k) {
    case "flip": {
      const f = anyFile(), b = await read(f);
      if (!b.length) return undefined;
      const at = int(r, 0, b.length - 1), mask = int(r, 1, 255);
      b[at] ^= mask;
      await write(f, b);
      return { kind: k, detail: `${f}: byte ${at} ^= 0x${mask.toString(16)}` };
    }
    case "truncate": {
      const f = anyFile(), b = await read(f);
      const n = r() < 0.2 ? 0 : int(r, 0, Math.max(0, b.length - 1));
      await write(f, b.subarray(0, n));
      return { kind: k, detail: `${f}: ${b.length} -> ${n} bytes` };
    }
    case "append": {
      const f = anyFile(), b = await read(f);
      const extra = new Uint8Array(int(r, 1, 64)).map(() => int(r, 0, 255));
      const out = new Uint8Array(b.length + extra.length);
      out.set(b);
      out.set(extra, b.length);
      await write(f, out);
      return { kind: k, detail: `${f}: ${extra.length} bytes appended` };
    }
    case "delete": {
      const f = r() < 0.5 ? pick(r, metas) : pick(r, files);
      await Deno.remove(join(root, f));
      return { kind: k, detail: f };
    }
    case "swap": {
      const pool = r() < 0.5 ? data : r() < 0.5 ? caseMetas : files;
      const a = pick(r, pool), b = pick(r, pool);
      if (a === b) return undefined;
      const [x, y] = [await read(a), await read(b)];
      await write(a, y);
      await write(b, x);
      return { kind: k, detail: `${a} <-> ${b}` };
    }
    case "copy": {
      const pool = r() < 0.6 ? data : caseMetas;
      const a = pick(r, pool), b = pick(r, pool);
      if (a === b) return undefined;
      await write(b, await read(a));
      return { kind: k, detail: `${a} -> ${b}` };
    }
    case "elsewhere": {
      const theirs = await cacheFiles(elsewhere);
      const f = pick(r, files.filter((x) => theirs.includes(x)));
      if (!f) return undefined;
      await write(f, await Deno.readFile(join(elsewhere, f)));
      return { kind: k, detail: `${f} from another cache` };
    }
    case "field": {
      const f = pick(r, metas);
      const meta = await json(f);
      const paths = leaves(meta).filter((p) => p.length);
      const p = pick(r, paths);
      let at: unknown = meta;
      for (const s of p) at = (at as Record<string | number, unknown>)[s];
      const to = mutate(r, at);
      await putJson(f, setAt(meta, p, to));
      return {
        kind: k,
        detail: `${f}: ${p.join(".")} ${JSON.stringify(at)} -> ${JSON.stringify(to)}`,
      };
    }
    case "named": {
      const [what, pattern, fn] = pick(r, NAMED);
      // The case's own metadata, or its copy in the consolidated metadata.
      const root0 = await json("zarr.json");
      const inRoot = root0.consolidated_metadata && r() < 0.5;
      const f = inRoot ? "zarr.json" : pick(r, caseMetas);
      const doc = await json(f);
      const key = inRoot
        ? pick(r, Object.keys(doc.consolidated_metadata.metadata).filter((x) => x.includes("/")))
        : undefined;
      const meta = key ? doc.consolidated_metadata.metadata[key] : doc;
      const paths = namedPaths(meta, pattern);
      if (!paths.length) return undefined;
      const p = pick(r, paths);
      let at: unknown = meta;
      for (const s of p) at = (at as Record<string | number, unknown>)[s];
      const edited = setAt(meta, p, fn(at));
      if (key) doc.consolidated_metadata.metadata[key] = edited;
      await putJson(f, key ? doc : edited);
      return {
        kind: k,
        detail: `${f}${key ? ` (consolidated ${key})` : ""}: ${what} at ${p.join(".")}`,
      };
    }
    case "consolidated": {
      const doc = await json("zarr.json");
      const md = doc.consolidated_metadata?.metadata;
      if (!md) return undefined;
      const keys = Object.keys(md);
      const op = int(r, 0, 2);
      let detail: string;
      if (op === 0) {
        const key = pick(r, keys);
        delete md[key];
        detail = `dropped ${key}`;
      } else if (op === 1) {
        const key = pick(r, keys.filter((x) => x.includes("/")));
        md[`${key.split("/")[0]}/ghost`] = md[key];
        detail = `added ${key.split("/")[0]}/ghost as a copy of ${key}`;
      } else {
        const cases = keys.filter((x) => x.includes("/"));
        const a = pick(r, cases), b = pick(r, cases);
        if (a === b) return undefined;
        [md[a], md[b]] = [md[b], md[a]];
        detail = `swapped ${a} and ${b}`;
      }
      await putJson("zarr.json", doc);
      return { kind: k, detail };
    }
    case "folder": {
      const cases = [...new Set(caseMetas.map((f) => f.split("/").slice(0, 2).join("/")))];
      const a = pick(r, cases), b = pick(r, cases);
      if (a === b) return undefined;
      if (r() < 0.5) {
        await Deno.remove(join(root, b), { recursive: true });
        await copyTree(join(root, a), join(root, b));
        return { kind: k, detail: `case folder ${b} replaced by a copy of ${a}` };
      }
      await Deno.rename(join(root, a), join(root, `${a}.tmp`));
      await Deno.rename(join(root, b), join(root, a));
      await Deno.rename(join(root, `${a}.tmp`), join(root, b));
      return { kind: k, detail: `case folders ${a} and ${b} swapped` };
    }
  }
  throw new Error(`no damage kind ${k}`);
}

/** Every kind of damage. */
export const KINDS = [
  "flip",
  "truncate",
  "append",
  "delete",
  "swap",
  "copy",
  "elsewhere",
  "field",
  "named",
  "consolidated",
  "folder",
] as const;

/** A checked node's name: `(root)`, a group, or `dataset/case`. */
function nodeName(c: CaseCheck): string {
  return c.node === "cache" ? "(root)" : c.name ? `${c.dataset}/${c.name}` : c.dataset;
}

/** How one damage went against the promise. */
export interface Outcome {
  /** Whether verify found anything. */
  caught: boolean;
  /** Whether any reader returned something else, or failed. */
  changed: boolean;
  /** Breaches of the promise, in words (empty when kept). */
  breaches: string[];
  /** Verify's findings, one line each. */
  verdict: string[];
}

/** Whether a read's error names what it should and says it in words. */
function badError(key: string, value: string): string | undefined {
  if (!value.startsWith("!")) return undefined;
  if (value.startsWith("!untagged")) return `${key}: an untagged error: ${value}`;
  if (
    /"position"|allocation failed|Cannot read prop|is not a function|undefined|\[object/.test(value)
  ) {
    return `${key}: an internal reason: ${value}`;
  }
  const name = key.split(" ")[1];
  // A listed entry is its case's already; its error need not name it again.
  if (
    name && !key.startsWith("list ") && !value.startsWith("!not-a-cache") &&
    !value.includes(name.split("/")[1]) &&
    !/consolidated metadata|zarr\.json/.test(value)
  ) {
    return `${key}: does not name the case: ${value}`;
  }
  return undefined;
}

/**
 * Checks the promise on the damaged cache at `root` against the sound cache's snapshot
 * `before` (of `cases`): either verify finds something naming each case a reader now
 * returns otherwise (or fails on), or every reader returns what it did; and every read
 * error is tagged and says what and where in words.
 */
export async function checkPromise(
  root: string,
  before: Snapshot,
  cases: readonly string[],
  overHttp = false,
): Promise<Outcome> {
  const after = await snapshot(root, cases);
  const breaches: string[] = [];
  const differs: string[] = [];
  for (const [key, value] of after) {
    const bad = badError(key, value);
    if (bad) breaches.push(bad);
    if (before.get(key) !== value) differs.push(key);
  }
  for (const key of before.keys()) if (!after.has(key)) differs.push(key);
  let verdict: string[];
  try {
    const report = await verifyCache(root, { maxProblems: 3 });
    verdict = report.checks.filter((c) => c.problems.length).map((c) =>
      `${nodeName(c)}: ${c.problems.join("; ")}`
    );
  } catch (e) {
    verdict = [`(threw) ${e instanceof VocoError ? e.kind : "untagged"}: ${(e as Error).message}`];
    if (!(e instanceof VocoError)) breaches.push(`verify threw untagged: ${(e as Error).message}`);
  }
  if (overHttp) {
    // verify over HTTP (cache serve) names the same nodes as on the folder.
    // A root zarr.json gone: the folder is no cache to serve (and a plain HTTP server
    // could not show that the rest is one).
    const notACache = (e: unknown) => e instanceof VocoError && e.kind === "not-a-cache";
    const server = await serveCache(root, { port: 0 }).catch((e) => {
      if (notACache(e)) return undefined;
      throw e;
    });
    try {
      const remote = server
        ? await verifyCache(server.url, { maxProblems: 3 }).then(
          (r) => r.checks.filter((c) => c.problems.length).map(nodeName),
          (e) => [notACache(e) ? "(root)" : "(threw)"],
        )
        : ["(root)"];
      const local = verdict.map((l) => l.split(": ")[0].replace(/^\(threw\).*/, "(threw)"));
      const norm = (xs: string[]) =>
        JSON.stringify([...new Set(xs.map((x) => x.replace(/^\(threw\).*/, "(threw)")))].sort());
      if (norm(remote) !== norm(local)) {
        breaches.push(`verify over HTTP names ${norm(remote)}, on the folder ${norm(local)}`);
      }
    } finally {
      await server?.shutdown();
    }
  }
  const text = verdict.join("\n");
  const caught = verdict.length > 0;
  for (const key of differs) {
    const silent = !after.get(key)?.startsWith("!");
    const name = key.split(" ")[1];
    if (!caught) {
      breaches.push(
        `verify found nothing, but ${key} ${silent ? "returns other values" : "fails"}: ` +
          `${before.get(key)} -> ${after.get(key)}`,
      );
    } else if (
      name && name.includes("/") && !text.includes(name) &&
      !verdict.some((l) => l.startsWith(`${name.split("/")[0]}: `)) &&
      !verdict.some((l) => l.startsWith("(root)") || l.startsWith("(threw)"))
    ) {
      breaches.push(`verify did not name ${name}, whose ${key} changed: ${text}`);
    }
  }
  return { caught, changed: differs.length > 0, breaches, verdict };
}
