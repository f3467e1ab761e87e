// The storage subcommands of `deno task cache`: ls, stats, verify, rm, consolidate (their
// specs, spread into tasks/cache.ts, and their printing; the work is in cache/). ls, stats
// and verify read a folder or a URL; rm and consolidate write, so only a folder.
import { userPath } from "./_args.ts";
import {
  CACHE_LOCATION_ARG,
  cacheLocation,
  isRemoteLocation,
  readerOptions,
  REMOTE_FLAGS,
} from "./_cache_location.ts";
import { formatBytes, Progress, UsageError } from "./_cli.ts";
import { datasetStats, listCaseInfo, PICKLE_OVERHEAD } from "../cache/inspect/stats.ts";
import { verifyCache } from "../cache/inspect/verify.ts";
import { removeCase, removeDataset } from "../cache/write/cache_dir.ts";
import { removeFromCache } from "../cache/write/remove.ts";
import { consolidate, refreshConsolidated } from "../cache/write/consolidate.ts";
import { ensureDataset } from "../cache/write/cache_dir.ts";
import type { CacheReaderOptions } from "../cache/read/cache_reader.ts";

const CACHE_ARG = {
  name: "cache",
  help: "the path of the cache folder (deno task cache consolidate ct.zarr)",
  type: "string",
  min: 1,
  max: 1,
} as const;

/** What the URL forms of ls and stats say in their help. */
const REMOTE_SIZES =
  `The cache may be a URL: http(s):// (deno task cache serve; listing needs consolidated
metadata) or s3://bucket/prefix (--endpoint, AWS_* variables); the bytes are then those
stored, from a HEAD request per file (S3: from the object listing).`;

/** The `<cache>` of ls, stats and verify: a folder or a URL. */
const LOCATION_ARG = {
  ...CACHE_LOCATION_ARG,
  help:
    "the path of the cache folder, or its http(s):// (cache serve) or s3://bucket/prefix URL (deno task cache ls ct.zarr)",
} as const;

const JSON_FLAG = { type: "boolean", help: "print JSON (for scripts) instead of text" } as const;

/** The specs of the storage subcommands, spread into `CACHE.subcommands`. */
export const STORAGE_SUBCOMMANDS = {
  ls: {
    name: "cache ls",
    summary: "list datasets and cases: shape, spacing, bytes, source",
    usage: ["cache ls <cache> [--dataset NAME] [--json]"],
    description: `Lists each dataset group with its cases: shape, spacing, bytes on disk and
source; entries whose metadata cannot be read are listed as BROKEN (exit code 1).
${REMOTE_SIZES}`,
    positionals: LOCATION_ARG,
    flags: {
      ...REMOTE_FLAGS,
      dataset: { type: "string", arg: "NAME", help: "only the cases of this dataset group" },
      json: JSON_FLAG,
    },
    examples: [
      "cache ls ct.zarr",
      "cache ls ct.zarr --dataset ct --json",
      "cache ls http://127.0.0.1:8000/",
      "cache ls s3://bucket/caches/ct.zarr --endpoint http://127.0.0.1:9000",
    ],
  },
  stats: {
    name: "cache stats",
    summary: "totals per dataset: bytes, ratio to float32 and to a PersistentDataset, recipes",
    usage: ["cache stats <cache> [--json]"],
    description: `Totals each dataset group: cases, files, bytes, the same voxels as float32
and as MONAI's PersistentDataset, how much smaller the cache is, and the cases per recipe.
${REMOTE_SIZES}`,
    positionals: LOCATION_ARG,
    flags: { ...REMOTE_FLAGS, json: JSON_FLAG },
    examples: [
      "cache stats ct.zarr",
      "cache stats http://127.0.0.1:8000/ --json",
      "cache stats s3://bucket/caches/ct.zarr --endpoint http://127.0.0.1:9000",
    ],
  },
  verify: {
    name: "cache verify",
    summary: "read every chunk: checksums, shapes, attributes, fingerprints",
    usage: ["cache verify <cache> [--fix] [--json] [--quiet]"],
    description:
      `Reads every chunk of every case and checks its CRC-32C and decoded size, that none is
missing, each shard index, the metadata and attributes, and recomputes each fingerprint.
--fix removes the broken cases (the next prep rebuilds them) and rewrites damaged dataset
group metadata. The cache may be a URL: http(s):// (deno task cache serve; listing needs
consolidated metadata) or s3://bucket/prefix (--endpoint, AWS_* variables); each file is
then fetched whole (one request per shard), a few at once. A cache at a URL is read-only
from here: --fix is refused, run it on the machine that holds the folder.`,
    positionals: LOCATION_ARG,
    flags: {
      ...REMOTE_FLAGS,
      fix: { type: "boolean", help: "remove broken cases so that the next prep rebuilds them" },
      json: JSON_FLAG,
      quiet: { type: "boolean", help: "no progress bar" },
    },
    examples: [
      "cache verify ct.zarr",
      "cache verify ct.zarr --fix",
      "cache verify http://127.0.0.1:8000/ --quiet",
      "cache verify s3://bucket/caches/ct.zarr --endpoint http://127.0.0.1:9000",
    ],
    footer: `Exit code: 0 when every case is sound, 1 when any is broken (also with --fix, which
removed them: run prep again), 2 on bad usage.`,
  },
  rm: {
    name: "cache rm",
    summary: "remove cases or whole dataset groups",
    usage: ["cache rm <cache> <DATASET[/CASE]>..."],
    description: `Removes each named case (DATASET/CASE) or dataset group (DATASET) with its
files. Refuses a folder that is not a VoCo cache, names that are not nodes of it, and
anything outside it; nothing is removed unless every name is valid.`,
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
    description:
      `Writes consolidated_metadata into the root zarr.json as zarr-python 3 does, so that
opening the cache remotely costs one request. prep keeps it up to date afterwards.`,
    positionals: CACHE_ARG,
    examples: ["cache consolidate ct.zarr"],
  },
} as const;

/** Pads every column of `rows` to its widest cell (the last column is left as it is). */
function table(rows: string[][], indent = "  "): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c]?.length ?? 0)));
  return rows.map((r) =>
    indent + r.map((cell, c) => c === r.length - 1 ? cell : cell.padEnd(widths[c])).join("  ")
  );
}

async function ls(
  root: string,
  dataset: string | undefined,
  json: boolean,
  options: CacheReaderOptions,
): Promise<number> {
  let cases = await listCaseInfo(root, options);
  if (dataset !== undefined) {
    const groups = [...new Set(cases.map((c) => c.dataset))];
    if (!groups.includes(dataset)) {
      throw new UsageError(
        `--dataset ${dataset}: no such group in ${root} (groups: ${groups.join(", ") || "none"})`,
        { command: "cache ls" },
      );
    }
    cases = cases.filter((c) => c.dataset === dataset);
  }
  const broken = cases.filter((c) => c.error).length;
  if (json) {
    console.log(JSON.stringify({ cache: root, cases }, null, 2));
    return broken ? 1 : 0;
  }
  for (const s of datasetStats(cases)) {
    const of = cases.filter((c) => c.dataset === s.dataset && !c.error && c.name);
    console.log(`${s.dataset}: ${s.cases} case(s), ${formatBytes(s.bytes)}`);
    if (of.length) {
      const rows = of.map((c) => [
        c.name,
        c.shape!.join("x"),
        (c.spacing ?? []).map((x) => x.toFixed(2)).join("x"),
        formatBytes(c.bytes),
        c.source ?? "",
      ]);
      console.log(table([["case", "shape", "spacing mm", "size", "source"], ...rows]).join("\n"));
    }
    for (const c of cases.filter((c) => c.dataset === s.dataset && c.error)) {
      console.log(`  BROKEN ${c.name || "(dataset group)"}: ${c.error}`);
    }
  }
  return broken ? 1 : 0;
}

async function stats(root: string, json: boolean, options: CacheReaderOptions): Promise<number> {
  const cases = await listCaseInfo(root, options);
  const groups = datasetStats(cases);
  const total = groups.reduce(
    (t, g) => ({
      cases: t.cases + g.cases,
      bytes: t.bytes + g.bytes,
      files: t.files + g.files,
      f32: t.f32 + g.float32Bytes,
      pd: t.pd + g.persistentBytes,
    }),
    { cases: 0, bytes: 0, files: 0, f32: 0, pd: 0 },
  );
  if (json) {
    console.log(JSON.stringify({ cache: root, datasets: groups, total }, null, 2));
    return 0;
  }
  const ratio = (a: number, b: number) => b ? `${(a / b).toFixed(1)}x` : "-";
  const rows = groups.map((g) => [
    g.dataset,
    String(g.cases),
    String(g.files),
    formatBytes(g.bytes),
    formatBytes(g.float32Bytes),
    ratio(g.float32Bytes, g.bytes),
    formatBytes(g.persistentBytes),
    ratio(g.persistentBytes, g.bytes),
    Object.entries(g.recipes).map(([r, n]) => `${r} ${n}`).join(", "),
  ]);
  rows.push([
    "total",
    String(total.cases),
    String(total.files),
    formatBytes(total.bytes),
    formatBytes(total.f32),
    ratio(total.f32, total.bytes),
    formatBytes(total.pd),
    ratio(total.pd, total.bytes),
    "",
  ]);
  const head = [
    "dataset",
    "cases",
    "files",
    "on disk",
    "float32",
    "smaller",
    "PersistentDataset",
    "smaller",
    "recipes (cases)",
  ];
  console.log(`${root}`);
  console.log(table([head, ...rows]).join("\n"));
  console.log(
    `  (PersistentDataset: MONAI's float32 pickles, the voxels + about ` +
      `${PICKLE_OVERHEAD / 1024} kB per case)`,
  );
  return 0;
}

async function verify(
  root: string,
  v: { fix: boolean; json: boolean; quiet: boolean; endpoint?: string; anonymous?: boolean },
): Promise<number> {
  const remote = isRemoteLocation(root);
  if (remote && v.fix) {
    throw new UsageError(
      `--fix cannot repair ${root}: a cache at a URL is read-only from here (nothing is ` +
        `removed over HTTP or S3); run "deno task cache verify <folder> --fix" on the machine ` +
        `that holds the cache folder, then publish it again`,
      { command: "cache verify" },
    );
  }
  let progress: Progress | undefined;
  const report = await verifyCache(root, {
    ...readerOptions(v),
    onStart: (e, i, total) => {
      progress ??= new Progress(total, v.quiet || v.json);
      progress.working(`${e.dataset}/${e.name}`);
      void i;
    },
    onCase: (c) => {
      const label = c.name ? `${c.dataset}/${c.name}` : `${c.dataset} (dataset group)`;
      progress?.tick(
        c.problems.length ? `BROKEN ${label}: ${c.problems.join("; ")}` : undefined,
        `${c.problems.length ? "BROKEN" : "ok"} ${label}`,
      );
    },
  });
  progress?.end();
  const broken = report.checks.filter((c) => c.problems.length);
  const fixed: string[] = [];
  if (v.fix) {
    for (const c of broken) {
      if (c.name) await removeCase(root, c.dataset, c.name);
      else await ensureDataset(root, c.dataset).catch(() => removeDataset(root, c.dataset));
      fixed.push(c.name ? `${c.dataset}/${c.name}` : c.dataset);
    }
    if (fixed.length) await refreshConsolidated(root);
  }
  const mbs = report.bytes / 1e6 / Math.max(report.seconds, 1e-9);
  if (v.json) {
    console.log(JSON.stringify(
      {
        cache: root,
        cases: report.checks.length,
        bytes: report.bytes,
        seconds: report.seconds,
        mb_per_s: mbs,
        broken: broken.map((c) => ({ dataset: c.dataset, name: c.name, problems: c.problems })),
        removed: fixed,
        notes: report.checks.filter((c) => c.notes.length).map((c) => ({
          dataset: c.dataset,
          name: c.name,
          notes: c.notes,
        })),
      },
      null,
      2,
    ));
    return broken.length ? 1 : 0;
  }
  const noted = report.checks.filter((c) => c.notes.length);
  if (noted.length) {
    console.log(
      `note: ${noted.length} case(s) ${noted[0].notes[0]}, e.g. ${noted[0].dataset}/${
        noted[0].name
      }`,
    );
  }
  const chunks = report.checks.reduce((a, c) => a + c.chunks, 0);
  console.log(
    (remote ? `${root}: ` : "") +
      `verified ${report.checks.length} case(s), ${chunks} chunks, ${formatBytes(report.bytes)} ` +
      `in ${report.seconds.toFixed(2)} s (${mbs.toFixed(0)} MB/s): ` +
      (broken.length
        ? `${broken.length} broken` +
          (v.fix
            ? `, removed (run prep again to rebuild them): ${fixed.join(", ")}`
            : remote
            ? "; verify --fix on the cache folder itself removes them"
            : "; --fix removes them")
        : "all sound"),
  );
  return broken.length ? 1 : 0;
}

/** Refuses a URL given to a subcommand that writes into the cache folder. */
function folderOnly(raw: string, command: string): string {
  if (isRemoteLocation(raw)) {
    throw new UsageError(
      `${raw}: cache ${command} changes the cache folder itself; a cache at a URL is ` +
        `read-only from here: run it on the machine that holds the folder`,
      { command: `cache ${command}` },
    );
  }
  return userPath(raw);
}

async function rm(args: string[]): Promise<number> {
  const [rawRoot, ...specs] = args;
  const root = folderOnly(rawRoot, "rm");
  let removed: string[];
  try {
    removed = await removeFromCache(root, specs);
  } catch (e) {
    if (e instanceof TypeError) throw new UsageError(e.message, { command: "cache rm" });
    throw e;
  }
  for (const r of removed) console.log(`removed ${r}`);
  return 0;
}

/**
 * Runs a storage subcommand with its parsed values; `undefined` when `command` is not one
 * of them.
 */
export async function runStorageCommand(
  command: string,
  values: Record<string, unknown>,
  positionals: string[],
): Promise<number | undefined> {
  const [raw] = positionals;
  const options = readerOptions(values as { endpoint?: string; anonymous?: boolean });
  switch (command) {
    case "ls":
      return await ls(
        cacheLocation(raw),
        values.dataset as string | undefined,
        values.json as boolean,
        options,
      );
    case "stats":
      return await stats(cacheLocation(raw), values.json as boolean, options);
    case "verify":
      return await verify(
        cacheLocation(raw),
        values as { fix: boolean; json: boolean; quiet: boolean },
      );
    case "rm":
      return await rm(positionals);
    case "consolidate": {
      const root = folderOnly(raw, "consolidate");
      const n = await consolidate(root);
      console.log(`${root}: consolidated the metadata of ${n} node(s) into zarr.json`);
      return 0;
    }
  }
  return undefined;
}
