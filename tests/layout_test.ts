// Pins the repository's layout rules: imports between top-level folders go one way, and
// every source file opens with a line on what it is for.
import { join, relative, resolve } from "node:path";
import { assert } from "./_helpers.ts";

const ROOT = resolve(new URL("..", import.meta.url).pathname);
const FOLDERS = ["prep", "cache", "train", "tasks"];

function* sourceFiles(dir: string): Generator<string> {
  for (const e of Deno.readDirSync(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) yield* sourceFiles(p);
    else if (e.name.endsWith(".ts")) yield p;
  }
}

/** The top-level folders each top-level folder imports from (relative imports only). */
function folderImports(): Map<string, Set<string>> {
  const edges = new Map<string, Set<string>>();
  for (const top of FOLDERS) {
    const seen = new Set<string>();
    for (const file of sourceFiles(join(ROOT, top))) {
      const text = Deno.readTextFileSync(file);
      for (const m of text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)) {
        const target = relative(ROOT, resolve(file, "..", m[1])).split("/")[0];
        if (target !== top && FOLDERS.includes(target)) seen.add(target);
      }
    }
    edges.set(top, seen);
  }
  return edges;
}

Deno.test("imports between top-level folders go one way (cache imports neither prep nor train)", () => {
  const edges = folderImports();
  for (const [a, targets] of edges) {
    for (const b of targets) {
      assert(!edges.get(b)?.has(a), `${a}/ and ${b}/ import each other`);
    }
  }
  assert(edges.get("cache")!.size === 0, `cache/ imports ${[...edges.get("cache")!]}`);
  for (const top of ["prep", "cache", "train"]) {
    assert(!edges.get(top)!.has("tasks"), `${top}/ imports tasks/`);
  }
});

Deno.test("every source file opens with a comment saying what it is for", () => {
  const bare: string[] = [];
  for (const top of [...FOLDERS, "tests"]) {
    for (const file of sourceFiles(join(ROOT, top))) {
      const first = Deno.readTextFileSync(file).trimStart();
      if (!first.startsWith("//") && !first.startsWith("/**")) bare.push(relative(ROOT, file));
    }
  }
  assert(bare.length === 0, `files without an opening comment: ${bare.join(", ")}`);
});
