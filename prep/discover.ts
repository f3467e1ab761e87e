import { basename, dirname, join, relative, resolve } from "node:path";
import { formatOf, stripImageSuffix } from "./read_image.ts";
import { toNodeName } from "../cache/format.ts";

/** One source image found in the inputs. */
export interface SourceCase {
  /** Absolute path of the file. */
  path: string;
  /** Path relative to its dataset root, recorded in the cache. */
  source: string;
  /** Case name in the cache (unique within the dataset). */
  name: string;
}

/** Options of {@linkcode discoverCases}. */
export interface DiscoverOptions {
  /** Folder that datalist paths are relative to; default: the JSON's folder. */
  baseDir?: string;
}

/**
 * Expands `prep` inputs into source cases: a file is itself; a folder is scanned
 * recursively for images of a known format (hidden entries skipped); a `.json` file is
 * a Decathlon/VoCo datalist (`{"training": [{"image": "rel/path"}], …}`) whose `image`
 * entries of every list are taken. Case names are the file names without suffix, made
 * unique with the relative path when two collide.
 */
export async function discoverCases(
  inputs: readonly string[],
  options: DiscoverOptions = {},
): Promise<SourceCase[]> {
  const found: { path: string; source: string }[] = [];
  for (const input of inputs) {
    const abs = resolve(input);
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(abs);
    } catch {
      throw new Deno.errors.NotFound(`Input ${input} does not exist`);
    }
    if (info.isDirectory) {
      for (const p of await scan(abs)) found.push({ path: p, source: relative(abs, p) });
    } else if (abs.toLowerCase().endsWith(".json")) {
      found.push(...await readDatalist(abs, options.baseDir));
    } else {
      found.push({ path: abs, source: basename(abs) });
    }
  }
  const seen = new Set<string>();
  const unique = found.filter((f) => !seen.has(f.path) && seen.add(f.path));
  return nameCases(unique);
}

async function scan(dir: string): Promise<string[]> {
  const out: string[] = [];
  const entries = (await Array.fromAsync(Deno.readDir(dir))).sort((a, b) =>
    a.name < b.name ? -1 : 1
  );
  for (const e of entries) {
    if (e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    if (e.isDirectory) out.push(...await scan(p));
    else if (e.isFile && formatOf(e.name)) out.push(p);
  }
  return out;
}

async function readDatalist(
  file: string,
  baseDir?: string,
): Promise<{ path: string; source: string }[]> {
  let json: unknown;
  try {
    json = JSON.parse(await Deno.readTextFile(file));
  } catch (e) {
    throw new SyntaxError(`Datalist ${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (!json || typeof json !== "object" || Array.isArray(json)) {
    throw new SyntaxError(`Datalist ${file} must be an object of lists ({"training": [...]})`);
  }
  const base = resolve(baseDir ?? dirname(file));
  const out: { path: string; source: string }[] = [];
  for (const [key, list] of Object.entries(json as Record<string, unknown>)) {
    if (!Array.isArray(list)) continue;
    for (const item of list) {
      const image = typeof item === "string" ? item : (item as { image?: unknown })?.image;
      if (typeof image !== "string") {
        throw new SyntaxError(`Datalist ${file}: an entry of "${key}" has no "image" path`);
      }
      const path = resolve(base, image);
      out.push({ path, source: relative(base, path) });
    }
  }
  return out;
}

function nameCases(found: { path: string; source: string }[]): SourceCase[] {
  const short = found.map((f) => toNodeName(stripImageSuffix(basename(f.path))));
  const counts = new Map<string, number>();
  for (const s of short) counts.set(s, (counts.get(s) ?? 0) + 1);
  return found.map((f, i) => ({
    ...f,
    name: counts.get(short[i])! > 1 ? toNodeName(stripImageSuffix(f.source)) : short[i],
  }));
}
