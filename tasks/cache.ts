// `deno task cache`: look inside a cache, check it, serve it, tidy it. Each subcommand
// parses its flags, calls one function of cache/ and prints what it returns.
import { serveCache } from "../cache/store/serve.ts";
import { previewCache } from "../cache/inspect/preview.ts";
import { inspectCache, inspectCase } from "../cache/inspect/inspect.ts";
import { datasetStats, listCaseInfo, PICKLE_OVERHEAD } from "../cache/inspect/stats.ts";
import { type CaseCheck, verifyCache } from "../cache/inspect/verify.ts";
import { repairCache } from "../cache/write/repair.ts";
import { removeFromCache } from "../cache/write/remove.ts";
import { consolidate } from "../cache/write/consolidate.ts";
import { exportNifti } from "../prep/formats/export_nifti.ts";
import { formatBytes, runMain, UsageError } from "../cli/run.ts";
import { Progress } from "../cli/progress.ts";
import { defineCommand, parseCommand } from "../cli/args.ts";
import {
  CACHE_LOCATION_ARG as WHERE,
  cacheLocation,
  folderOnly,
  isRemoteLocation,
  readerOptions,
  REMOTE_FLAGS,
} from "./_cache_location.ts";

const URL_NOTE = `The cache may be a URL: http(s):// (cache serve; listing needs consolidated
metadata) or s3://bucket/prefix (--endpoint, AWS_* variables).`;
const FOLDER = { ...WHERE, help: "the path of the cache folder (deno task cache rm ct.zarr x)" };
const JSON_FLAG = { type: "boolean", help: "print JSON (for scripts) instead of text" } as const;

/** The command line of `deno task cache`. */
export const CACHE = defineCommand({
  name: "cache",
  summary: "look inside a VoCo Zarr cache, verify, serve, export and tidy it",
  subcommands: {
    inspect: {
      name: "cache inspect",
      summary: "list the cases of a cache, or show one case",
      usage: ["cache inspect <cache> [--case DATASET/CASE] [--json]"],
      description: `Lists every dataset group and case with its shape, spacing, dtype, size on
disk (a folder), recipe and source; entries that cannot be used are listed as BROKEN (exit
code 1). With --case, decodes that case and prints its attributes and value range.
${URL_NOTE}`,
      positionals: WHERE,
      flags: {
        ...REMOTE_FLAGS,
        case: { type: "string", arg: "DATASET/CASE", help: "show this case decoded" },
        json: JSON_FLAG,
      },
      examples: [
        "cache inspect ct.zarr",
        "cache inspect ct.zarr --case ct/example_ct",
        "cache inspect http://127.0.0.1:8000/ --case ct/example_ct",
      ],
    },
    ls: {
      name: "cache ls",
      summary: "list datasets and cases: shape, spacing, bytes, source",
      usage: ["cache ls <cache> [--dataset NAME] [--json]"],
      description: `Lists each dataset group with its cases: shape, spacing, bytes and source;
BROKEN entries exit 1. ${URL_NOTE} Bytes at a URL are those stored (HEAD, or S3's listing).`,
      positionals: WHERE,
      flags: {
        ...REMOTE_FLAGS,
        dataset: { type: "string", arg: "NAME", help: "only the cases of this dataset group" },
        json: JSON_FLAG,
      },
      examples: [
        "cache ls ct.zarr",
        "cache ls http://127.0.0.1:8000/",
        "cache ls s3://bucket/caches/ct.zarr --endpoint http://127.0.0.1:9000",
      ],
    },
    stats: {
      name: "cache stats",
      summary: "totals per dataset: bytes, ratio to float32 and to a PersistentDataset, recipes",
      usage: ["cache stats <cache> [--json]"],
      description: `Totals each dataset group: cases, files, bytes, the same voxels as float32
and as MONAI's PersistentDataset, how much smaller the cache is, the cases per recipe.
${URL_NOTE}`,
      positionals: WHERE,
      flags: { ...REMOTE_FLAGS, json: JSON_FLAG },
      examples: [
        "cache stats ct.zarr",
        "cache stats s3://bucket/caches/ct.zarr --endpoint http://127.0.0.1:9000",
      ],
    },
    verify: {
      name: "cache verify",
      summary: "read every chunk: checksums, positions, metadata, fingerprints",
      usage: ["cache verify <cache> [--fix] [--json] [--quiet]"],
      description: `Reads every chunk of every case: its CRC-32C, that it is the chunk written
at its position, its decoded size, that none is missing; checks each shard index, every
metadata field a reader obeys against what the writer writes, each case's digest and name,
each dataset group, the consolidated copy against the cache, and recomputes fingerprints.
--fix removes the broken cases (the next prep rebuilds them), rewrites broken group, root
and consolidated metadata. ${URL_NOTE} A URL is read-only from here: --fix is refused.`,
      positionals: WHERE,
      flags: {
        ...REMOTE_FLAGS,
        fix: { type: "boolean", help: "remove broken cases so that the next prep rebuilds them" },
        json: JSON_FLAG,
        quiet: { type: "boolean", help: "no progress bar" },
      },
      examples: [
        "cache verify ct.zarr",
        "cache verify ct.zarr --fix",
        "cache verify s3://bucket/caches/ct.zarr --endpoint http://127.0.0.1:9000",
      ],
      footer: `Exit code: 0 when all is sound, 1 when anything is broken (also with --fix, which
repaired it: run prep again), 2 on bad usage.`,
    },
    serve: {
      name: "cache serve",
      summary: "serve a cache read-only over HTTP (ranges, ETags, CORS)",
      usage: ["cache serve <cache> [--port N] [--host ADDRESS]"],
      description: `Serves the regular files of a cache folder read-only: GET and HEAD with byte
ranges, ETags and CORS. No folder is listed; nothing hidden (.staging), nothing that is no
regular file, nothing outside the cache is served. Clients that stall are cut off after
--idle-timeout seconds; one client takes at most half the slots. An unconsolidated cache is
consolidated first (URL clients list it from that). Listens on 127.0.0.1 unless --host
says otherwise; --port 0 picks a free port. Serves until Ctrl-C.`,
      positionals: { ...FOLDER, help: "the cache folder to serve", type: "path" },
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
        "idle-timeout": {
          type: "number",
          min: 0.1,
          default: 30,
          arg: "S",
          help: "seconds a client may take no bytes before it is cut off",
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
      description: `Draws the axial, coronal and sagittal slices through the centre of a case (in
mm, patient right on the left, anterior and superior up; 0..1 black to white) with its
name; without --case, a contact sheet of the first --cases cases (of --dataset). ${URL_NOTE}`,
      positionals: WHERE,
      flags: {
        ...REMOTE_FLAGS,
        case: { type: "string", arg: "DATASET/CASE", help: "preview this case alone" },
        cases: { type: "number", integer: true, min: 1, default: 16, help: "cases on the sheet" },
        dataset: { type: "string", arg: "NAME", help: "the contact sheet of this dataset only" },
        out: { type: "path", arg: "FILE", default: "preview.png", help: "the PNG to write" },
        "tile-height": {
          type: "number",
          integer: true,
          min: 16,
          max: 4096,
          arg: "PX",
          help: "row height (default: mm size for one case, 160 for a sheet)",
        },
      },
      examples: [
        "cache preview ct.zarr --case ct/example_ct --out ct.png",
        "cache preview ct.zarr --cases 16 --out sheet.png",
      ],
    },
    export: {
      name: "cache export",
      summary: "write cases as NIfTI (RAS affine) for ITK-SNAP, 3D Slicer, nibabel",
      usage: [
        "cache export <cache> --case DATASET/CASE --out FILE.nii.gz [--stored]",
        "cache export <cache> --dataset NAME --out DIR [--stored]",
      ],
      description:
        `Writes a case (--case) to a file, or every case of a dataset group (--dataset) into a
folder as <case>.nii.gz: float32 values as the readers return them, or with --stored the
stored integers with scl_slope/scl_inter (as small as the cache). ${URL_NOTE}`,
      positionals: WHERE,
      flags: {
        ...REMOTE_FLAGS,
        case: { type: "string", arg: "DATASET/CASE", help: "the case to write to --out" },
        dataset: { type: "string", arg: "NAME", help: "every case of this group, into --out" },
        out: { type: "path", arg: "FILE|DIR", help: "a .nii.gz (or .nii) file, or a folder" },
        stored: { type: "boolean", help: "the stored integers with scl_slope/scl_inter" },
      },
      examples: [
        "cache export ct.zarr --case ct/example_ct --out example_ct.nii.gz",
        "cache export ct.zarr --dataset ct --out ct_nifti --stored",
      ],
    },
    rm: {
      name: "cache rm",
      summary: "remove cases or whole dataset groups",
      usage: ["cache rm <cache> <DATASET[/CASE]>..."],
      description: `Removes each named case (DATASET/CASE) or dataset group (DATASET). Refuses a
folder that is no VoCo cache, names that are no nodes of it, and anything outside it;
nothing is removed unless every name is valid.`,
      positionals: {
        name: "cache> <DATASET[/CASE]",
        help: "the cache folder, then the cases or dataset groups to remove",
        min: 2,
      },
      examples: ["cache rm ct.zarr ct/example_ct", "cache rm ct.zarr ct"],
    },
    consolidate: {
      name: "cache consolidate",
      summary: "put the whole hierarchy's metadata into the root zarr.json",
      usage: ["cache consolidate <cache>"],
      description: `Writes consolidated_metadata into the root zarr.json as zarr-python 3 does
(with its digest), so that opening the cache remotely costs one request. prep, rm and
verify --fix keep it up to date afterwards.`,
      positionals: FOLDER,
      examples: ["cache consolidate ct.zarr"],
    },
  },
  examples: [
    "cache inspect ct.zarr",
    "cache verify ct.zarr",
    "cache serve ct.zarr --port 0",
    "cache preview ct.zarr --cases 16",
  ],
});

/** Pads every column of `rows` to its widest cell (the last column is left as it is). */
function table(rows: string[][], indent = "  "): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c]?.length ?? 0)));
  return rows.map((r) =>
    indent + r.map((cell, c) => c === r.length - 1 ? cell : cell.padEnd(widths[c])).join("  ")
  ).join("\n");
}

/** A number in at most 6 significant digits, without trailing zeros. */
const num = (x: number) => Number.isInteger(x) ? String(x) : String(Number(x.toPrecision(6)));
const mm = (v?: number[]) => v?.map((x) => x.toFixed(2)).join("x") ?? "?";
const json = (v: unknown) => console.log(JSON.stringify(v, null, 2));

/** A value on one line: numbers short, arrays and objects compact. */
function compact(v: unknown): string {
  if (typeof v === "number") return num(v);
  if (v === null || v === undefined) return "none";
  if (Array.isArray(v)) return `[${v.map(compact).join(", ")}]`;
  if (typeof v === "object") {
    return Object.entries(v as Record<string, unknown>).map(([k, x]) => `${k} ${compact(x)}`)
      .join(", ");
  }
  return String(v);
}

/** A codec as `name(setting value, ...)`, a chain inside it (sharding's) joined by `+`. */
function codecText(x: { name: string; configuration?: Record<string, unknown> }): string {
  const isChain = (v: unknown): v is { name: string }[] =>
    Array.isArray(v) && v.length > 0 && v.every((c) => typeof c?.name === "string");
  const settings = Object.entries(x.configuration ?? {}).map(([k, v]) =>
    `${k} ${isChain(v) ? v.map(codecText).join(" + ") : compact(v)}`
  );
  return settings.length ? `${x.name}(${settings.join(", ")})` : x.name;
}

/** Attribute rows of one case: matrices on four rows, recipe steps one a row. */
function attributeLines(a: Record<string, unknown>): [string, string][] {
  const rows: [string, string][] = [];
  const isMatrix = (x: unknown) => Array.isArray(x) && x.length > 0 && x.every(Array.isArray);
  const matrix = (k: string, m: number[][]) => {
    const w = Math.max(...m.flat().map((x) => num(x).length));
    m.forEach((r, i) =>
      rows.push([i ? "" : k, `[${r.map((x) => num(x).padStart(w)).join("  ")}]`])
    );
  };
  for (const [k, v] of Object.entries(a)) {
    if (isMatrix(v)) matrix(k, v as number[][]);
    else if (k === "recipe" && v && typeof v === "object") {
      const r = v as { name: string; steps?: Record<string, unknown>[] };
      rows.push([k, r.name]);
      for (const { op, ...rest } of r.steps ?? []) {
        rows.push(["", `${op}${Object.keys(rest).length ? `  ${compact(rest)}` : ""}`]);
      }
    } else if (k === "source_mtime_ms" && typeof v === "number") {
      rows.push([k, `${v} (${new Date(v).toISOString()})`]);
    } else if (v && typeof v === "object" && !Array.isArray(v)) {
      const entries = Object.entries(v as Record<string, unknown>);
      rows.push([k, compact(Object.fromEntries(entries.filter(([, x]) => !isMatrix(x))))]);
      for (const [sub, x] of entries.filter(([, x]) => isMatrix(x))) {
        matrix(`${k}.${sub}`, x as number[][]);
      }
    } else rows.push([k, compact(v)]);
  }
  return rows;
}

async function inspect(where: string, v: Remote & { case?: string; json: boolean }) {
  const options = readerOptions(v);
  if (v.case !== undefined) {
    const c = await inspectCase(where, v.case, options);
    if (v.json) return json(c), 0;
    const codecs = c.codecs.filter((x) => x.name !== "bytes").map(codecText);
    const rows: [string, string][] = [
      ["shape", `${c.shape.join(" x ")} voxels, ${c.data_type}`],
      ["chunks", `${c.chunk_shape?.join(" x ") ?? "?"}, ${codecs.join(", ") || "uncompressed"}`],
      ...(c.bytes === undefined ? [] : [["on disk", formatBytes(c.bytes)] as [string, string]]),
      [
        "values",
        `${num(c.values.min)} .. ${num(c.values.max)}, mean ${num(c.values.mean)} ` +
        "(decoded to float32)",
      ],
      ...attributeLines(c.attributes),
    ];
    const w = Math.max(...rows.map(([k]) => k.length)) + 2;
    console.log(`${c.case} in ${c.cache}`);
    for (const [k, line] of rows) console.log(`  ${k.padEnd(w)}${line}`);
    return 0;
  }
  const r = await inspectCache(where, options);
  if (v.json) return json(r), r.broken ? 1 : 0;
  const ok = r.cases.filter((c) => !c.error);
  console.log(
    `${r.cache}: ${ok.length} case(s) in ${new Set(r.cases.map((c) => c.dataset)).size} ` +
      "dataset group(s)",
  );
  const local = r.bytes !== undefined;
  const row = (c: typeof ok[0]) => [
    `${c.dataset}/${c.name}`,
    c.shape!.join("x"),
    mm(c.spacing),
    c.data_type ?? "?",
    ...(local ? [formatBytes(c.bytes!)] : []),
    c.recipe ?? "?",
    c.source ?? "?",
  ];
  const head = ["case", "shape", "spacing mm", "dtype", ...(local ? ["size"] : []), "recipe"];
  if (ok.length) console.log(table([[...head, "source"], ...ok.map(row)]));
  for (const c of r.cases.filter((c) => c.error)) {
    console.log(
      `  BROKEN ${c.name ? `${c.dataset}/${c.name}` : `${c.dataset} (dataset group)`}: ` +
        c.error,
    );
  }
  if (local) console.log(`total ${formatBytes(r.bytes!)}${r.broken ? `; ${r.broken} broken` : ""}`);
  return r.broken ? 1 : 0;
}

/** The flags every subcommand that reads takes. */
type Remote = { endpoint?: string; anonymous?: boolean };

async function ls(where: string, v: Remote & { dataset?: string; json: boolean }): Promise<number> {
  let cases = await listCaseInfo(where, readerOptions(v));
  const groups = [...new Set(cases.map((c) => c.dataset))];
  if (v.dataset !== undefined && !groups.includes(v.dataset)) {
    throw new UsageError(
      `--dataset ${v.dataset}: no such group in ${where} (groups: ${groups.join(", ") || "none"})`,
      { command: "cache ls" },
    );
  }
  if (v.dataset !== undefined) cases = cases.filter((c) => c.dataset === v.dataset);
  const broken = cases.filter((c) => c.error).length ? 1 : 0;
  if (v.json) return json({ cache: where, cases }), broken;
  for (const s of datasetStats(cases)) {
    const of = cases.filter((c) => c.dataset === s.dataset);
    console.log(`${s.dataset}: ${s.cases} case(s), ${formatBytes(s.bytes)}`);
    const rows = of.filter((c) => !c.error && c.name).map((
      c,
    ) => [c.name, c.shape!.join("x"), mm(c.spacing), formatBytes(c.bytes), c.source ?? ""]);
    if (rows.length) {
      console.log(table([["case", "shape", "spacing mm", "size", "source"], ...rows]));
    }
    for (const c of of.filter((c) => c.error)) {
      console.log(`  BROKEN ${c.name || "(dataset group)"}: ${c.error}`);
    }
  }
  return broken;
}

async function stats(where: string, v: Remote & { json: boolean }): Promise<number> {
  const groups = datasetStats(await listCaseInfo(where, readerOptions(v)));
  const t = { dataset: "total", cases: 0, bytes: 0, files: 0, f32: 0, pd: 0 };
  for (const g of groups) {
    t.cases += g.cases, t.bytes += g.bytes, t.files += g.files;
    t.f32 += g.float32Bytes, t.pd += g.persistentBytes;
  }
  const { dataset: _, ...total } = t;
  if (v.json) return json({ cache: where, datasets: groups, total }), 0;
  const ratio = (a: number, b: number) => b ? `${(a / b).toFixed(1)}x` : "-";
  const line = (name: string, n: number, files: number, b: number, f: number, p: number) => [
    name,
    String(n),
    String(files),
    formatBytes(b),
    formatBytes(f),
    ratio(f, b),
    formatBytes(p),
    ratio(p, b),
  ];
  const rows = groups.map((g) => [
    ...line(g.dataset, g.cases, g.files, g.bytes, g.float32Bytes, g.persistentBytes),
    Object.entries(g.recipes).map(([r, n]) => `${r} ${n}`).join(", "),
  ]);
  rows.push([...line("total", t.cases, t.files, t.bytes, t.f32, t.pd), ""]);
  const head = ["dataset", "cases", "files", "on disk", "float32", "smaller"];
  console.log(where);
  console.log(table([[...head, "PersistentDataset", "smaller", "recipes (cases)"], ...rows]));
  console.log(
    `  (PersistentDataset: MONAI's float32 pickles, the voxels + about ` +
      `${PICKLE_OVERHEAD / 1024} kB per case)`,
  );
  return 0;
}

/** How a checked node is named in the output. */
function label(c: CaseCheck): string {
  return c.node === "cache"
    ? "(cache root)"
    : c.name
    ? `${c.dataset}/${c.name}`
    : `${c.dataset} (dataset group)`;
}

async function verify(
  where: string,
  v: Remote & { fix: boolean; json: boolean; quiet: boolean },
): Promise<number> {
  const remote = isRemoteLocation(where);
  if (remote && v.fix) {
    throw new UsageError(
      `--fix cannot repair ${where}: a cache at a URL is read-only from here (nothing is ` +
        `removed over HTTP or S3); run "deno task cache verify <folder> --fix" on the machine ` +
        `that holds the cache folder, then publish it again`,
      { command: "cache verify" },
    );
  }
  let progress: Progress | undefined;
  const report = await verifyCache(where, {
    ...readerOptions(v),
    onStart: (e, _, total) => {
      progress ??= new Progress(total, v.quiet || v.json);
      progress.working(e.name ? `${e.dataset}/${e.name}` : e.dataset || "(cache root)");
    },
    onCase: (c) => {
      const broken = c.problems.length > 0 && !v.json; // JSON carries them
      progress?.tick(
        broken ? `BROKEN ${label(c)}: ${c.problems.join("; ")}` : undefined,
        `${broken ? "BROKEN" : "ok"} ${label(c)}`,
      );
    },
  });
  progress?.end();
  const broken = report.checks.filter((c) => c.problems.length);
  const fixed = v.fix ? await repairCache(where, broken) : [];
  const cases = report.checks.filter((c) => (c.node ?? "case") === "case");
  const seconds = report.seconds;
  const mbs = report.bytes / 1e6 / Math.max(seconds, 1e-9);
  const noted = report.checks.filter((c) => c.notes.length);
  if (v.json) {
    json({
      cache: where,
      cases: cases.length,
      bytes: report.bytes,
      seconds,
      mb_per_s: mbs,
      broken: broken.map(({ dataset, name, node, problems }) => ({
        dataset,
        name,
        node,
        problems,
      })),
      removed: fixed,
      notes: noted.map(({ dataset, name, notes }) => ({ dataset, name, notes })),
    });
    return broken.length ? 1 : 0;
  }
  for (const n of new Set(noted.flatMap((c) => c.notes))) {
    const of = noted.filter((c) => c.notes.includes(n));
    console.log(`note: ${of.length} case(s) ${n}, e.g. ${label(of[0])}`);
  }
  const chunks = cases.reduce((a, c) => a + c.chunks, 0);
  console.log(
    (remote ? `${where}: ` : "") +
      `verified ${cases.length} case(s), ${chunks} chunks, ${formatBytes(report.bytes)} ` +
      `in ${seconds.toFixed(2)} s (${mbs.toFixed(0)} MB/s): ` +
      (broken.length
        ? `${broken.length} broken` +
          (v.fix
            ? `; repaired: ${fixed.join(", ")} (run prep again to rebuild what was removed)`
            : remote
            ? "; verify --fix on the cache folder itself removes them"
            : "; --fix removes them")
        : "all sound"),
  );
  return broken.length ? 1 : 0;
}

/** `cache serve`: serves until Ctrl-C. */
async function serve(
  root: string,
  v: { port: number; host: string; "max-concurrent": number; "idle-timeout": number },
): Promise<number> {
  const server = await serveCache(root, {
    port: v.port,
    hostname: v.host,
    maxConcurrent: v["max-concurrent"],
    idleTimeoutMs: v["idle-timeout"] * 1000,
    consolidate: true,
  });
  if (server.consolidated) console.log(`  ${server.consolidated}`);
  console.log(`Serving ${root} read-only at ${server.url} (Ctrl-C stops)`);
  if (!["127.0.0.1", "localhost", "::1"].includes(v.host)) {
    console.log(`  note: listening on ${v.host}, reachable from other machines`);
  }
  // Graceful, but a client stalled on a full socket must not keep the server up for ever.
  const stop = () => {
    server.shutdown();
    Deno.unrefTimer(setTimeout(() => Deno.exit(0), 2000));
  };
  Deno.addSignalListener("SIGINT", stop);
  try {
    await server.finished;
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
  }
  return 0;
}

async function main(args: string[]): Promise<number> {
  const p = parseCommand(CACHE, args);
  if (p.help !== undefined) return console.log(p.help), 0;
  const [raw, ...names] = p.positionals;
  switch (p.command) {
    case "inspect":
      return await inspect(cacheLocation(raw), p.values);
    case "ls":
      return await ls(cacheLocation(raw), p.values);
    case "stats":
      return await stats(cacheLocation(raw), p.values);
    case "verify":
      return await verify(cacheLocation(raw), p.values);
    case "serve":
      return await serve(raw, p.values);
    case "preview": {
      const v = p.values;
      const r = await previewCache(cacheLocation(raw), {
        ...readerOptions(v),
        case: v.case,
        cases: v.cases,
        dataset: v.dataset,
        tileHeight: v["tile-height"],
      });
      await Deno.writeFile(v.out, r.png);
      console.log(`${v.out}: ${r.cases.length} case(s), ${formatBytes(r.png.length)}`);
      return 0;
    }
    case "export": {
      const v = p.values;
      if ((v.case === undefined) === (v.dataset === undefined) || !v.out) {
        throw new UsageError("export needs --out and one of --case or --dataset", {
          command: "cache export",
        });
      }
      const files = await exportNifti(cacheLocation(raw), v.out, {
        ...readerOptions(v),
        case: v.case,
        dataset: v.dataset,
        stored: v.stored,
        onCase: (c) => console.log(`${c.case} -> ${c.path} (${formatBytes(c.bytes)})`),
      });
      console.log(`exported ${files.length} case(s) as NIfTI`);
      return 0;
    }
    case "rm":
      for (const r of await removeFromCache(folderOnly(raw, "rm"), names)) {
        console.log(`removed ${r}`);
      }
      return 0;
    case "consolidate": {
      const root = folderOnly(raw, "consolidate");
      const n = await consolidate(root);
      console.log(`${root}: consolidated the metadata of ${n} node(s) into zarr.json`);
      return 0;
    }
  }
  throw new Error(`no handler for cache ${(p as { command: string }).command}`);
}

if (import.meta.main) await runMain("cache", main);
export { main };
