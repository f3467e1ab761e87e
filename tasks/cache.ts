// `deno task cache`: look inside a cache (a table for people, JSON for scripts).
import { join } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { type CacheEntry, listCases } from "../cache/write/cache_dir.ts";
import { type CaseAttributes, readCase } from "../cache/read/read_case.ts";
import { CacheReader, type CacheReaderOptions, isCacheUrl } from "../cache/read/cache_reader.ts";
import { serveCache } from "../cache/store/serve.ts";
import { renderPreview } from "../cache/inspect/preview.ts";
import { formatBytes, runMain, UsageError } from "./_cli.ts";
import { closest, defineCommand, parseCommand } from "./_args.ts";
import { runStorageCommand, STORAGE_SUBCOMMANDS } from "./_cache_storage.ts";
import {
  CACHE_LOCATION_ARG as CACHE_ARG,
  cacheLocation,
  readerOptions,
  REMOTE_FLAGS,
} from "./_cache_location.ts";

/** The command line of `deno task cache`. */
export const CACHE = defineCommand({
  name: "cache",
  summary: "look inside a VoCo Zarr cache",
  subcommands: {
    inspect: {
      name: "cache inspect",
      summary: "list the cases of a cache, or show one case",
      usage: ["cache inspect <cache> [--case DATASET/CASE] [--json]"],
      description:
        `Lists every dataset group and case with its shape, spacing, dtype, size on disk, recipe
and source; cases whose metadata cannot be read are listed as BROKEN (exit code 1). With
--case, decodes that case and prints its attributes and value range. The cache may be a
URL: http(s):// (deno task cache serve; listing needs consolidated metadata) or
s3://bucket/prefix (--endpoint, AWS_* variables); sizes are then not shown.`,
      positionals: CACHE_ARG,
      flags: {
        ...REMOTE_FLAGS,
        case: {
          type: "string",
          arg: "DATASET/CASE",
          help: "show this case: attributes, decoded value range",
        },
        json: { type: "boolean", help: "print JSON (for scripts) instead of text" },
      },
      examples: [
        "cache inspect ct.zarr",
        "cache inspect ct.zarr --case ct/example_ct",
        "cache inspect ct.zarr --json",
        "cache inspect http://127.0.0.1:8000/ --case ct/example_ct",
      ],
    },
    serve: {
      name: "cache serve",
      summary: "serve a cache read-only over HTTP (ranges, ETags, CORS)",
      usage: ["cache serve <cache> [--port N] [--host ADDRESS]"],
      description:
        `Serves the files of a cache folder read-only: GET and HEAD with byte ranges (206,
416), ETag / Last-Modified / If-None-Match (304) and CORS for browser viewers. No folder
is listed, hidden names (.staging) and paths leading out of the cache (dot segments,
encoded slashes, symbolic links pointing outside) are not served, and at most
--max-concurrent requests are answered at once. Listens on 127.0.0.1 unless --host says
otherwise; --port 0 picks a free port. Prints the URL, then serves until Ctrl-C.`,
      positionals: { ...CACHE_ARG, help: "the cache folder to serve", type: "path" },
      flags: {
        port: {
          type: "number",
          integer: true,
          min: 0,
          max: 65535,
          default: 8000,
          help: "port to listen on; 0 picks a free one",
        },
        host: {
          type: "string",
          arg: "ADDRESS",
          default: "127.0.0.1",
          help: "address to listen on (0.0.0.0: every interface, reachable from other machines)",
        },
        "max-concurrent": {
          type: "number",
          integer: true,
          min: 1,
          default: 64,
          help: "requests answered at once; more wait",
        },
      },
      examples: ["cache serve ct.zarr", "cache serve ct.zarr --port 0"],
    },
    preview: {
      name: "cache preview",
      summary: "a PNG of a case's mid-slices, or a contact sheet of many cases",
      usage: [
        "cache preview <cache> --case DATASET/CASE [--out FILE.png]",
        "cache preview <cache> [--cases N] [--dataset NAME] [--out FILE.png]",
      ],
      description:
        `Draws the axial, coronal and sagittal slices through the centre of a case (in mm,
patient right on the left, anterior and superior up; values 0..1 black to white) with its
name. Without --case, a contact sheet of the first --cases cases of the cache (or of
--dataset), each with its name (drawn in capitals). The cache may be a URL.`,
      positionals: CACHE_ARG,
      flags: {
        ...REMOTE_FLAGS,
        case: { type: "string", arg: "DATASET/CASE", help: "preview this case alone" },
        cases: {
          type: "number",
          integer: true,
          min: 1,
          default: 16,
          help: "cases on the contact sheet",
        },
        dataset: { type: "string", arg: "NAME", help: "the contact sheet of this dataset only" },
        out: { type: "path", arg: "FILE", default: "preview.png", help: "the PNG to write" },
        "tile-height": {
          type: "number",
          integer: true,
          min: 16,
          max: 4096,
          arg: "PX",
          help: "height of each case's slices (default: mm size for one case, 160 for a sheet)",
        },
      },
      examples: [
        "cache preview ct.zarr --case ct/example_ct --out ct.png",
        "cache preview ct.zarr --cases 16 --out sheet.png",
        "cache preview http://127.0.0.1:8000/ --dataset ct",
      ],
    },
    ...STORAGE_SUBCOMMANDS,
  },
  examples: [
    "cache inspect ct.zarr",
    "cache inspect ct.zarr --case ct/example_ct",
    "cache serve ct.zarr --port 0",
    "cache preview ct.zarr --cases 16",
  ],
});

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) total += await dirBytes(p);
    else if (e.isFile) total += (await Deno.stat(p)).size;
  }
  return total;
}

/** Pads every column of `rows` to its widest cell (the last column is left as it is). */
function table(rows: string[][], indent = "  "): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c]?.length ?? 0)));
  return rows.map((r) =>
    indent + r.map((cell, c) => c === r.length - 1 ? cell : cell.padEnd(widths[c])).join("  ")
  );
}

/** A number in at most 6 significant digits, without trailing zeros. */
function num(x: number): string {
  return Number.isInteger(x) ? String(x) : String(Number(x.toPrecision(6)));
}

/** A value on one line: numbers short, arrays and objects compact. */
function compact(v: unknown): string {
  if (typeof v === "number") return num(v);
  if (v === null || v === undefined) return "none";
  if (typeof v === "string") return v;
  if (Array.isArray(v)) return `[${v.map(compact).join(", ")}]`;
  if (typeof v === "object") {
    return Object.entries(v as Record<string, unknown>).map(([k, x]) => `${k} ${compact(x)}`)
      .join(", ");
  }
  return String(v);
}

/** A 4 x 4 matrix as four aligned rows. */
function matrix(m: number[][]): string[] {
  const cells = m.map((r) => r.map(num));
  const w = Math.max(...cells.flat().map((c) => c.length));
  return cells.map((r) => `[${r.map((c) => c.padStart(w)).join("  ")}]`);
}

/** The attribute lines of one case: key, then its value compact (matrices, steps on lines). */
function attributeLines(a: CaseAttributes): [string, string][] {
  const rows: [string, string][] = [];
  for (const [k, v] of Object.entries(a)) {
    if (k === "affine" && Array.isArray(v)) {
      matrix(v as number[][]).forEach((line, i) => rows.push([i ? "" : k, line]));
    } else if (k === "recipe" && v && typeof v === "object") {
      const r = v as { name: string; steps?: Record<string, unknown>[] };
      rows.push([k, r.name]);
      for (const s of r.steps ?? []) {
        const { op, ...rest } = s;
        rows.push(["", `${op}${Object.keys(rest).length ? `  ${compact(rest)}` : ""}`]);
      }
    } else if (k === "source_mtime_ms" && typeof v === "number") {
      rows.push([k, `${v} (${new Date(v).toISOString()})`]);
    } else if (v && typeof v === "object" && !Array.isArray(v)) {
      // Nested matrices (the source's affine) get rows of their own.
      const entries = Object.entries(v as Record<string, unknown>);
      const isMatrix = (x: unknown) => Array.isArray(x) && x.every(Array.isArray);
      rows.push([k, compact(Object.fromEntries(entries.filter(([, x]) => !isMatrix(x))))]);
      for (const [sub, x] of entries.filter(([, x]) => isMatrix(x))) {
        matrix(x as number[][]).forEach((line, i) => rows.push([i ? "" : `${k}.${sub}`, line]));
      }
    } else rows.push([k, compact(v)]);
  }
  return rows;
}

/** Finds `spec` among the cache's cases, or says what there is (groups, close names). */
function findCase(root: string, spec: string, cases: CacheEntry[]): CacheEntry {
  const full = cases.filter((c) => c.name).map((c) => `${c.dataset}/${c.name}`);
  const hit = cases.find((c) => c.name && `${c.dataset}/${c.name}` === spec);
  if (hit) return hit;
  const groups = [...new Set(cases.map((c) => c.dataset))];
  const count = (g: string) => full.filter((f) => f.startsWith(`${g}/`)).length;
  const what = groups.length
    ? `its groups: ${
      groups.map((g) => `${g} (${count(g)} case${count(g) === 1 ? "" : "s"})`)
        .join(", ")
    }`
    : "it holds no case";
  const [group, name] = spec.includes("/") ? spec.split("/", 2) : [undefined, spec];
  const inGroup = group === undefined ? [] : full.filter((f) => f.startsWith(`${group}/`));
  // A case without its group, a close name, or else the cases of the group it names.
  const sameName = full.filter((f) => f.endsWith(`/${name}`));
  const near = groups.includes(spec)
    ? undefined
    : sameName.length
    ? sameName.join(" or ")
    : closest(spec, full) ??
      full.find((f) => f.split("/")[1] === closest(name, full.map((x) => x.split("/")[1])));
  const list = (g: string) => {
    const of = full.filter((f) => f.startsWith(`${g}/`));
    return `${of.slice(0, 8).join(", ")}${of.length > 8 ? ", ..." : ""}`;
  };
  const hint = near
    ? `; did you mean ${near}?`
    : inGroup.length
    ? `; ${group} holds ${list(group!)}`
    : groups.includes(spec)
    ? `; ${spec} is a group, of ${list(spec)}`
    : "";
  throw new UsageError(
    `--case ${spec}: no such case in ${root} (cases are named DATASET/CASE); ${what}${hint}`,
    { command: "cache inspect" },
  );
}

async function inspectCase(root: string, spec: string, json: boolean): Promise<number> {
  const entry = findCase(root, spec, await listCases(root));
  if (entry.error) throw new Error(`${spec}: ${entry.error}`);
  const meta = JSON.parse(await Deno.readTextFile(join(entry.dir, "zarr.json")));
  const v = await readCase(new FileSystemStore(root), `/${entry.dataset}/${entry.name}`);
  let lo = Infinity, hi = -Infinity, sum = 0;
  for (const x of v.data) {
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
    sum += x;
  }
  const mean = sum / v.data.length;
  const bytes = await dirBytes(entry.dir);
  if (json) {
    console.log(JSON.stringify(
      {
        cache: root,
        case: spec,
        shape: v.shape,
        data_type: meta.data_type,
        chunk_shape: meta.chunk_grid?.configuration?.chunk_shape,
        codecs: meta.codecs,
        bytes,
        values: { min: lo, max: hi, mean },
        attributes: v.attributes,
      },
      null,
      2,
    ));
    return 0;
  }
  const chunk = meta.chunk_grid?.configuration?.chunk_shape as number[] | undefined;
  const codecs = (meta.codecs as { name: string; configuration?: Record<string, unknown> }[])
    .filter((c) => c.name !== "bytes")
    .map((c) => `${c.name}${c.configuration ? ` (${compact(c.configuration)})` : ""}`);
  const rows: [string, string][] = [
    ["shape", `${v.shape.join(" x ")} voxels, ${meta.data_type}`],
    ["chunks", `${chunk?.join(" x ") ?? "?"}, ${codecs.join(", ") || "uncompressed"}`],
    ["on disk", formatBytes(bytes)],
    ["values", `${num(lo)} .. ${num(hi)}, mean ${num(mean)} (decoded to float32)`],
    ...attributeLines(v.attributes),
  ];
  const w = Math.max(...rows.map(([k]) => k.length)) + 2;
  console.log(`${spec} in ${root}`);
  for (const [k, line] of rows) console.log(`  ${k.padEnd(w)}${line}`);
  return 0;
}

async function inspect(root: string, json: boolean): Promise<number> {
  const cases = await listCases(root);
  let total = 0, broken = 0;
  const listed: Record<string, unknown>[] = [];
  const rows: string[][] = [];
  const brokenLines: string[] = [];
  for (const c of cases) {
    const label = c.name ? `${c.dataset}/${c.name}` : `${c.dataset} (dataset group)`;
    try {
      if (c.error) throw new Error(c.error);
      // One read of the array's metadata gives its shape, dtype and attributes.
      const meta = JSON.parse(await Deno.readTextFile(join(c.dir, "zarr.json")));
      const a = meta.attributes as CaseAttributes;
      const bytes = await dirBytes(c.dir);
      total += bytes;
      listed.push({
        dataset: c.dataset,
        name: c.name,
        shape: meta.shape,
        spacing: a.spacing,
        data_type: meta.data_type,
        bytes,
        recipe: a.recipe.name,
        source: a.source,
      });
      rows.push([
        label,
        meta.shape.join("x"),
        a.spacing.map((s: number) => s.toFixed(2)).join("x"),
        meta.data_type,
        formatBytes(bytes),
        a.recipe.name,
        a.source,
      ]);
    } catch (e) {
      broken++;
      listed.push({ dataset: c.dataset, name: c.name, error: (e as Error).message });
      brokenLines.push(`  BROKEN ${label}: ${(e as Error).message}`);
    }
  }
  if (json) {
    console.log(JSON.stringify({ cache: root, bytes: total, broken, cases: listed }, null, 2));
    return broken ? 1 : 0;
  }
  const n = cases.filter((c) => c.name).length;
  const groups = new Set(cases.map((c) => c.dataset)).size;
  console.log(`${root}: ${n} case(s) in ${groups} dataset group(s)`);
  if (rows.length) {
    const head = ["case", "shape", "spacing mm", "dtype", "size", "recipe", "source"];
    console.log(table([head, ...rows]).join("\n"));
  }
  for (const line of brokenLines) console.log(line);
  console.log(`total ${formatBytes(total)}` + (broken ? `; ${broken} broken` : ""));
  return broken ? 1 : 0;
}

/** `cache inspect` of a URL: the reader's listing (no sizes), or one case decoded. */
async function inspectRemote(
  url: string,
  spec: string | undefined,
  json: boolean,
  options: CacheReaderOptions,
): Promise<number> {
  const reader = await CacheReader.open(url, options);
  if (spec !== undefined) {
    const c = await reader.openCase(spec);
    const v = await c.read();
    let lo = Infinity, hi = -Infinity, sum = 0;
    for (const x of v.data) {
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
      sum += x;
    }
    const values = { min: lo, max: hi, mean: sum / v.data.length };
    if (json) {
      console.log(JSON.stringify(
        { cache: url, case: spec, shape: v.shape, values, attributes: c.attributes },
        null,
        2,
      ));
      return 0;
    }
    const rows: [string, string][] = [
      ["shape", `${v.shape.join(" x ")} voxels`],
      ["values", `${num(lo)} .. ${num(hi)}, mean ${num(values.mean)} (decoded to float32)`],
      ...attributeLines(c.attributes),
    ];
    const w = Math.max(...rows.map(([k]) => k.length)) + 2;
    console.log(`${spec} in ${url}`);
    for (const [k, line] of rows) console.log(`  ${k.padEnd(w)}${line}`);
    return 0;
  }
  const cases = await reader.list();
  const broken = cases.filter((c) => c.error).length;
  if (json) {
    console.log(JSON.stringify({ cache: url, broken, cases }, null, 2));
    return broken ? 1 : 0;
  }
  const groups = new Set(cases.map((c) => c.dataset)).size;
  console.log(`${url}: ${cases.length} case(s) in ${groups} dataset group(s)`);
  const rows = cases.filter((c) => !c.error).map((c) => {
    const a = c.attributes ?? {} as CaseAttributes;
    return [
      `${c.dataset}/${c.name}`,
      c.shape!.join("x"),
      a.spacing?.map((x) => x.toFixed(2)).join("x") ?? "?",
      c.dataType ?? "?",
      a.recipe?.name ?? "?",
      a.source ?? "?",
    ];
  });
  if (rows.length) {
    console.log(
      table([["case", "shape", "spacing mm", "dtype", "recipe", "source"], ...rows])
        .join("\n"),
    );
  }
  for (const c of cases.filter((c) => c.error)) {
    console.log(`  BROKEN ${c.dataset}/${c.name}: ${c.error}`);
  }
  return broken ? 1 : 0;
}

/** `cache serve`: serves until Ctrl-C. */
async function serve(root: string, v: { port: number; host: string; "max-concurrent": number }) {
  const server = await serveCache(root, {
    port: v.port,
    hostname: v.host,
    maxConcurrent: v["max-concurrent"],
  });
  console.log(`Serving ${root} read-only at ${server.url} (Ctrl-C stops)`);
  if (v.host !== "127.0.0.1" && v.host !== "localhost" && v.host !== "::1") {
    console.log(`  note: listening on ${v.host}, reachable from other machines`);
  }
  const stop = () => server.shutdown();
  Deno.addSignalListener("SIGINT", stop);
  try {
    await server.finished;
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
  }
  return 0;
}

/** `cache preview`: one case, or a contact sheet. */
async function preview(
  location: string,
  v: {
    case?: string;
    cases: number;
    dataset?: string;
    out: string;
    "tile-height"?: number;
    endpoint?: string;
    anonymous: boolean;
  },
): Promise<number> {
  const reader = await CacheReader.open(location, readerOptions(v));
  let names: string[];
  if (v.case !== undefined) names = [v.case];
  else {
    const all = (await reader.list()).filter((c) => !c.error);
    const of = v.dataset === undefined ? all : all.filter((c) => c.dataset === v.dataset);
    if (!of.length) {
      const groups = [...new Set(all.map((c) => c.dataset))];
      throw new UsageError(
        v.dataset === undefined
          ? `${location} holds no case to preview`
          : `--dataset ${v.dataset}: no such dataset in ${location}; its datasets: ${
            groups.join(", ") || "none"
          }`,
        { command: "cache preview" },
      );
    }
    names = of.slice(0, v.cases).map((c) => `${c.dataset}/${c.name}`);
  }
  const png = await renderPreview(reader, names, { tileHeight: v["tile-height"] });
  await Deno.writeFile(v.out, png);
  console.log(`${v.out}: ${names.length} case(s), ${formatBytes(png.length)}`);
  return 0;
}

async function main(args: string[]): Promise<number> {
  const parsed = parseCommand(CACHE, args);
  if (parsed.help !== undefined) {
    console.log(parsed.help);
    return 0;
  }
  if (parsed.command === "serve") return await serve(parsed.positionals[0], parsed.values);
  const storage = await runStorageCommand(parsed.command, parsed.values, parsed.positionals);
  if (storage !== undefined) return storage;
  const location = cacheLocation(parsed.positionals[0]);
  if (parsed.command === "preview") return await preview(location, parsed.values);
  if (parsed.command !== "inspect") throw new Error(`no handler for cache ${parsed.command}`);
  const { values: v } = parsed;
  if (isCacheUrl(location)) return await inspectRemote(location, v.case, v.json, readerOptions(v));
  return v.case !== undefined
    ? await inspectCase(location, v.case, v.json)
    : await inspect(location, v.json);
}

if (import.meta.main) await runMain("cache", main);
export { main };
