// Tests of `deno task prep` as a user meets it: usage errors, paths, Ctrl-C, reruns that
// find removed sources or another recipe in a group.
import { join } from "node:path";
import { main as prepMain } from "../../tasks/prep.ts";
import { main as cacheMain } from "../../tasks/cache.ts";
import { exitCodeOf } from "../../cli/run.ts";
import { listCases } from "../../cache/write/cache_dir.ts";
import { readCaseAttributes } from "../../cache/read/read_case.ts";
import { FileSystemStore } from "@zarrita/storage";
import { assert, assertEquals, assertRejects, runTask, tempDir } from "../_helpers.ts";
import { denoTask, ROOT, writePhantoms } from "./_run.ts";

/** Runs prep in-process and expects an error of exit code 2 matching `pattern`. */
async function usage(args: string[], pattern: RegExp): Promise<void> {
  const e = await assertRejects(() => runTask(prepMain, args), pattern);
  assertEquals(exitCodeOf(e), 2, `${e.message} is not an exit-2 error`);
}

Deno.test("prep refuses unknown options with a suggestion and exits 2", async () => {
  const r = await denoTask(["prep", "x.nii.gz", "--out", "a.zarr", "--worker", "2"]);
  assertEquals(r.code, 2, r.stderr);
  assert(
    r.stderr.startsWith("prep: unknown option --worker (did you mean --workers?)\n"),
    r.stderr,
  );
  assert(r.stderr.includes('Run "deno task prep --help" for usage.'), r.stderr);
});

Deno.test("prep --out onto a file or a non-cache folder is bad usage before the run header", async () => {
  const file = await denoTask(["prep", "tests", "--out", "README.md"]);
  assertEquals(file.code, 2, file.stderr);
  assert(/--out: .*README\.md is a file, not a cache folder/.test(file.stderr), file.stderr);
  assert(!file.stderr.includes("case(s) from"), file.stderr);
  // The toolkit's own source folder `cache/`: what `--out cache` used to hit.
  const src = await denoTask(["prep", "tests", "--out", "cache"]);
  assertEquals(src.code, 2, src.stderr);
  assert(/is not empty and not a cache .*--out ct\.zarr/.test(src.stderr), src.stderr);
});

Deno.test("prep resolves relative paths from the folder the command was started in", async () => {
  await using dir = await tempDir();
  await writePhantoms(join(dir.path, "in", "scans"), 1);
  const r = await denoTask(["prep", "in/scans", "--out", "ct.zarr", "--quiet"], dir.path);
  assertEquals(r.code, 0, r.stderr);
  assertEquals((await listCases(join(dir.path, "ct.zarr"))).map((c) => `${c.dataset}/${c.name}`), [
    "scans/case0",
  ]);
  const inspect = await denoTask(["cache", "inspect", "ct.zarr"], join(dir.path));
  assertEquals(inspect.code, 0, inspect.stderr);
  assert(inspect.stdout.includes("scans/case0"), inspect.stdout);
  // --dataset paths, with a recipe, from the same folder.
  const d = await denoTask(
    ["prep", "--dataset", "mine=in/scans:chest", "--out", "ct.zarr", "--quiet"],
    dir.path,
  );
  assertEquals(d.code, 0, d.stderr);
  const a = await readCaseAttributes(new FileSystemStore(join(dir.path, "ct.zarr")), "/mine/case0");
  assertEquals(a.recipe.name, "chest");
});

Deno.test("prep checks --level against each compressor's range before the run", async () => {
  await using dir = await tempDir();
  const base = [dir.path, "--out", join(dir.path, "c.zarr")];
  await usage(
    [...base, "--compressor", "blosc-lz4", "--level", "15"],
    /blosc-lz4 takes 0\.\.9, got 15/,
  );
  await usage([...base, "--compressor", "blosc-zstd", "--level", "10"], /blosc-zstd takes 0\.\.9/);
  await usage([...base, "--compressor", "zstd", "--level", "23"], /zstd takes 1\.\.22, got 23/);
  await usage([...base, "--compressor", "zstd", "--level", "0"], /zstd takes 1\.\.22, got 0/);
  await usage(
    [...base, "--compressor", "none", "--level", "3"],
    /no meaning with --compressor none/,
  );
  await usage([...base, "--compressor", "lz4"], /--compressor takes .*got "lz4"/);
});

Deno.test("prep names an unknown per-dataset recipe and lists the recipes", async () => {
  await using dir = await tempDir();
  await usage(
    ["--dataset", `mine=${dir.path}:chset`, "--out", join(dir.path, "c.zarr")],
    /--dataset mine=.*:chset: unknown recipe "chset" \(did you mean chest\?\); recipes: voco-v2, voco-v1, chest/,
  );
  await usage(
    ["--dataset", `mine=${dir.path}/nothing`, "--out", join(dir.path, "c.zarr")],
    /nothing does not exist/,
  );
});

Deno.test("prep takes --spacing 1.5 1.5 2 and names the overridden recipe", async () => {
  await using dir = await tempDir();
  await writePhantoms(join(dir.path, "in"), 1);
  const out = join(dir.path, "c.zarr");
  const r = await runTask(prepMain, [
    join(dir.path, "in"),
    "--out",
    out,
    "--spacing",
    "4",
    "4",
    "5",
    "--window",
    "-1000",
    "500",
    "--quiet",
  ]);
  assertEquals(r.code, 0, r.text);
  const a = await readCaseAttributes(new FileSystemStore(out), "/in/case0");
  assertEquals(a.recipe.name, "voco-v2+spacing,window");
  assertEquals(a.spacing, [4, 4, 5]);
  const listing = await runTask(cacheMain, ["inspect", out]);
  assert(listing.text.includes("voco-v2+spacing,window"), listing.text);
});

Deno.test("prep --quiet prints no line per case when its output is not a terminal", async () => {
  await using dir = await tempDir();
  await writePhantoms(join(dir.path, "in"), 2);
  const quiet = await denoTask(["prep", "in", "--out", "c.zarr", "--quiet"], dir.path);
  assertEquals(quiet.code, 0, quiet.stderr);
  assert(!/written in\/case/.test(quiet.stderr), quiet.stderr);
  const loud = await denoTask(["prep", "in", "--out", "d.zarr"], dir.path);
  assert(/written in\/case0/.test(loud.stderr), loud.stderr);
});

Deno.test("prep reports cases whose source is gone, and --prune removes them", async () => {
  await using dir = await tempDir();
  const inp = join(dir.path, "in");
  const out = join(dir.path, "c.zarr");
  await writePhantoms(inp, 3);
  assertEquals((await runTask(prepMain, [inp, "--out", out, "--quiet"])).code, 0);
  await Deno.remove(join(inp, "case2.nii.gz"));
  const again = await runTask(prepMain, [inp, "--out", out, "--quiet"]);
  assertEquals(again.code, 0, again.text);
  assert(
    /1 cached case\(s\) no input gives any more .*in\/case2 <- case2\.nii\.gz/.test(again.text),
    again.text,
  );
  assert(
    /stale {6}1 case\(s\) without a source \(prep --prune removes them\)/.test(again.text),
    again.text,
  );
  assertEquals((await listCases(out)).length, 3);
  const pruned = await runTask(prepMain, [inp, "--out", out, "--quiet", "--prune"]);
  assertEquals(pruned.code, 0, pruned.text);
  assert(/pruned {5}1 case\(s\) without a source: in\/case2/.test(pruned.text), pruned.text);
  assertEquals((await listCases(out)).map((c) => c.name), ["case0", "case1"]);
  const clean = await runTask(prepMain, [inp, "--out", out, "--quiet"]);
  assert(!/stale|no input gives/.test(clean.text), clean.text);
});

Deno.test("prep refuses, without --force, a run that would mix recipes in a group", async () => {
  await using dir = await tempDir();
  const inp = join(dir.path, "in");
  const out = join(dir.path, "c.zarr");
  await writePhantoms(inp, 2);
  assertEquals((await runTask(prepMain, [inp, "--out", out, "--quiet"])).code, 0);
  // Only one of the two inputs with another recipe: one case replaced, one left behind.
  const one = join(inp, "case0.nii.gz");
  await usage(
    [one, "--out", out, "--dataset-name", "in", "--recipe", "voco-v1"],
    /group "in" of .* holds 2 case\(s\) made with recipe voco-v2; this run uses voco-v1: it would replace 1 of them and leave 1 next to the new ones, mixing recipes in one group\. .*--force/,
  );
  await usage(
    [inp, "--out", out, "--spacing", "2"],
    /this run uses voco-v2\+spacing: it would replace 2/,
  );
  assertEquals((await listCases(out)).length, 2);
  const forced = await runTask(prepMain, [
    inp,
    "--out",
    out,
    "--quiet",
    "--spacing",
    "2",
    "--force",
  ]);
  assertEquals(forced.code, 0, forced.text);
  assert(/--force: group "in"/.test(forced.text), forced.text);
  const a = await readCaseAttributes(new FileSystemStore(out), "/in/case1");
  assertEquals(a.recipe.name, "voco-v2+spacing");
  // The same recipe again: nothing to refuse.
  const same = await runTask(prepMain, [inp, "--out", out, "--quiet", "--spacing", "2"]);
  assertEquals(same.code, 0, same.text);
  assert(/2 unchanged/.test(same.text), same.text);
});

/** Spawns prep on `n` phantoms and sends SIGINT `times` times once the first case is in. */
async function interrupted(times: number): Promise<{ code: number; stdout: string; out: string }> {
  const dir = await Deno.makeTempDir({ prefix: "voco-test-" });
  await writePhantoms(join(dir, "in"), 6, [140, 140, 60]);
  const out = join(dir, "c.zarr");
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      join(ROOT, "tasks/prep.ts"),
      join(dir, "in"),
      "--out",
      out,
      "--workers",
      "1",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = new Response(child.stdout).text();
  // The first "written" line on stderr (one per case on a pipe) means a case is in and the
  // next has just started. Signals sent at once merge into one: each waits for its answer.
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let err = "";
  const until = async (pattern: RegExp) => {
    while (!pattern.test(err)) {
      const { value, done } = await reader.read();
      if (done) break;
      err += value;
    }
  };
  await until(/written in\/case/);
  child.kill("SIGINT");
  if (times > 1) {
    await until(/Interrupted:/);
    child.kill("SIGINT");
  }
  const drain = (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  const status = await child.status;
  await drain;
  return { code: status.code, stdout: await stdout, out };
}

Deno.test("Ctrl-C: prep finishes the running case, prints the summary and exits 130", async () => {
  const r = await interrupted(1);
  try {
    assertEquals(r.code, 130, r.stdout);
    assert(/not run \(interrupted\)/.test(r.stdout), r.stdout);
    const n = (await listCases(r.out)).length;
    assert(n >= 1 && n < 6, `${n} cases`);
  } finally {
    await Deno.remove(join(r.out, ".."), { recursive: true });
  }
});

Deno.test("a second Ctrl-C quits prep at once with exit code 130", async () => {
  const r = await interrupted(2);
  try {
    assertEquals(r.code, 130, r.stdout);
    assert(!r.stdout.includes("prep summary"), r.stdout);
  } finally {
    await Deno.remove(join(r.out, ".."), { recursive: true });
  }
});

Deno.test("prep's --dataset-name default is the parent folder of a file input", async () => {
  await using dir = await tempDir();
  await writePhantoms(join(dir.path, "scans"), 1);
  const out = join(dir.path, "c.zarr");
  const r = await runTask(prepMain, [
    join(dir.path, "scans", "case0.nii.gz"),
    "--out",
    out,
    "--quiet",
  ]);
  assertEquals(r.code, 0, r.text);
  assertEquals((await listCases(out)).map((c) => c.dataset), ["scans"]);
  const help = await runTask(prepMain, ["--help"]);
  assert(/--dataset-name NAME .*\n.*of a file's parent folder/.test(help.text), help.text);
});
