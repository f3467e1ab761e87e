// Pins the repository's layout rules: imports between top-level folders go one way, no two
// files import each other in a circle, rooms hold at most 16 source files, train/ takes from
// prep/ only its transforms and volume type, and every source file opens with a line on what
// it is for.
import { join, relative, resolve } from "node:path";
import { assert } from "./_helpers.ts";

const ROOT = resolve(new URL("..", import.meta.url).pathname);
const FOLDERS = ["prep", "cache", "train", "view", "bench", "cli", "tasks"];

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
    assert(!edges.get(top)!.has("bench"), `${top}/ imports bench/`);
    assert(!edges.get(top)!.has("view"), `${top}/ imports view/`);
  }
  assert(!edges.get("view")!.has("tasks"), "view/ imports tasks/");
  assert(!edges.get("view")!.has("bench"), "view/ imports bench/");
  // cli/ (the parser, exit codes, progress lines) serves the commands and stands on cache/ alone.
  for (const top of ["prep", "cache", "train", "view", "bench"]) {
    assert(!edges.get(top)!.has("cli"), `${top}/ imports cli/`);
  }
  assert(
    [...edges.get("cli")!].every((t) => t === "cache"),
    `cli/ imports ${[...edges.get("cli")!]}`,
  );
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

/** Every relative import of every source file under the top-level folders, resolved. */
function fileImports(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const top of FOLDERS) {
    for (const file of sourceFiles(join(ROOT, top))) {
      const text = Deno.readTextFileSync(file);
      const targets = [...text.matchAll(/(?:from|import)\s*\(?\s*"(\.{1,2}\/[^"]+\.ts)"/g)]
        .map((m) => relative(ROOT, resolve(file, "..", m[1])));
      // A file naming itself is an `@example` in its docs, not an import.
      graph.set(relative(ROOT, file), targets.filter((t) => t !== relative(ROOT, file)));
    }
  }
  return graph;
}

Deno.test("no source files import each other in a circle", () => {
  const graph = fileImports();
  const state = new Map<string, "open" | "done">();
  const circles: string[] = [];
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === "done") return;
    if (state.get(file) === "open") {
      circles.push([...path.slice(path.indexOf(file)), file].join(" -> "));
      return;
    }
    state.set(file, "open");
    for (const next of graph.get(file) ?? []) visit(next, [...path, file]);
    state.set(file, "done");
  };
  for (const file of graph.keys()) visit(file, []);
  assert(circles.length === 0, `import circles:\n${circles.join("\n")}`);
});

Deno.test("no folder holds more than 16 source files", () => {
  const crowded: string[] = [];
  const walk = (dir: string) => {
    const entries = [...Deno.readDirSync(dir)];
    const n = entries.filter((e) => e.isFile && e.name.endsWith(".ts")).length;
    if (n > 16) crowded.push(`${relative(ROOT, dir)}/ (${n})`);
    for (const e of entries) if (e.isDirectory) walk(join(dir, e.name));
  };
  for (const top of FOLDERS) walk(join(ROOT, top));
  assert(crowded.length === 0, `split into rooms by job: ${crowded.join(", ")}`);
});

Deno.test("train/ takes from prep/ only its transforms and its volume type", () => {
  const allowed = /^prep\/(transforms\/[^/]+|volume)\.ts$/;
  const bad: string[] = [];
  for (const [file, targets] of fileImports()) {
    if (!file.startsWith("train/")) continue;
    for (const t of targets) {
      if (t.startsWith("prep/") && !allowed.test(t)) bad.push(`${file} -> ${t}`);
    }
  }
  assert(bad.length === 0, bad.join("\n"));
});

Deno.test("the training loop reads top to bottom in train/pretrain.ts, under 200 lines", () => {
  const lines = Deno.readTextFileSync(join(ROOT, "train/pretrain.ts")).trimEnd().split("\n").length;
  assert(lines < 200, `train/pretrain.ts has ${lines} lines: move bookkeeping to train/run/`);
});

/**
 * Functions over about 100 lines (110 counted), each with its reason, and none elsewhere:
 * the pickle machine is one `case` per opcode, a table in code form.
 */
const LONG_FUNCTIONS: Record<string, string> = {
  "train/weights/_pickle.ts:unpickle": "one case per pickle opcode (a dispatch table)",
};

Deno.test("no function is over about 100 lines, but the listed tables", () => {
  const start =
    /^(\s*)(?:export\s+)?(?:async\s+)?function\*?\s+(\w+)|^(\s*)(?:static |async |private |get |set )*(#?\w+)\s*(?:<[^>]*>)?\(.*\)\s*(?::\s*[^{=]+)?\{\s*$/;
  const long: string[] = [];
  for (const top of FOLDERS) {
    for (const file of sourceFiles(join(ROOT, top))) {
      const lines = Deno.readTextFileSync(file).split("\n");
      for (let i = 0; i < lines.length; i++) {
        const m = lines[i].match(start);
        if (!m || /^\s*(if|for|while|switch|return|catch)\b/.test(lines[i])) continue;
        const indent = (m[1] ?? m[3]).length, name = m[2] ?? m[4];
        let j = i + 1;
        while (
          j < lines.length && !(lines[j].startsWith(" ".repeat(indent) + "}") &&
            lines[j].length - lines[j].trimStart().length === indent)
        ) j++;
        const key = `${relative(ROOT, file)}:${name}`;
        if (j - i + 1 > 110 && !LONG_FUNCTIONS[key]) long.push(`${key} (${j - i + 1} lines)`);
      }
    }
  }
  assert(long.length === 0, `split these functions:\n${long.join("\n")}`);
});

Deno.test("tasks/ stays a thin skin: under 2,500 lines in all", () => {
  let lines = 0;
  for (const file of sourceFiles(join(ROOT, "tasks"))) {
    lines += Deno.readTextFileSync(file).split("\n").length;
  }
  assert(lines < 2500, `tasks/ has ${lines} lines: decisions belong in the library`);
});
