// `deno task cache`: look inside a cache.
import { join } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { listCases } from "../cache/cache_dir.ts";
import { type CaseAttributes, readCase } from "../cache/read_case.ts";
import { formatBytes, runMain } from "./_cli.ts";

const HELP = `deno task cache: inspect a VoCo Zarr cache

Usage:
  deno task cache inspect <cache> [--case DATASET/CASE]

Subcommands:
  inspect   list datasets and cases with shape, spacing, dtype, size and source;
            with --case, decode that case and print its attributes and value range

Examples:
  deno task cache inspect cache
  deno task cache inspect cache --case btcv/img0001

(verify, preview and serve come with the cache issue.)
`;

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) total += await dirBytes(p);
    else if (e.isFile) total += (await Deno.stat(p)).size;
  }
  return total;
}

async function main(args: string[]): Promise<number> {
  if (args.length === 0 || args.includes("-h") || args.includes("--help")) {
    console.log(HELP);
    return args.length === 0 ? 2 : 0;
  }
  const [sub, root] = args;
  if (sub !== "inspect" || !root) {
    console.error(`cache: unknown or incomplete command "${args.join(" ")}"; see --help`);
    return 2;
  }
  const store = new FileSystemStore(root);
  const ci = args.indexOf("--case");
  if (ci >= 0) {
    const path = `/${args[ci + 1]}` as `/${string}`;
    const v = await readCase(store, path);
    let lo = Infinity, hi = -Infinity, sum = 0;
    for (const x of v.data) {
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
      sum += x;
    }
    console.log(JSON.stringify(v.attributes, null, 2));
    console.log(
      `shape ${v.shape.join("x")}, values ${lo.toFixed(4)}..${hi.toFixed(4)}, ` +
        `mean ${(sum / v.data.length).toFixed(4)}`,
    );
    return 0;
  }
  const cases = await listCases(root);
  let total = 0, broken = 0;
  console.log(`${root}: ${cases.filter((c) => c.name).length} case(s)`);
  for (const c of cases) {
    const label = c.name ? `${c.dataset}/${c.name}` : `${c.dataset} (dataset group)`;
    try {
      if (c.error) throw new Error(c.error);
      // One read of the array's metadata gives its shape, dtype and attributes.
      const meta = JSON.parse(await Deno.readTextFile(join(c.dir, "zarr.json")));
      const a = meta.attributes as CaseAttributes;
      const bytes = await dirBytes(c.dir);
      total += bytes;
      console.log(
        `  ${label}  ${meta.shape.join("x")}  ${
          a.spacing.map((s: number) => s.toFixed(2)).join("x")
        } mm  ${meta.data_type}  ${formatBytes(bytes)}  ${a.recipe.name}  <- ${a.source}`,
      );
    } catch (e) {
      broken++;
      console.log(`  BROKEN ${label}: ${(e as Error).message}`);
    }
  }
  console.log(`total ${formatBytes(total)}` + (broken ? `; ${broken} broken` : ""));
  return broken ? 1 : 0;
}

if (import.meta.main) await runMain("cache", main);
export { main };
