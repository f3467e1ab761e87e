// Tests of `deno task cache inspect`: usage errors, a case that is not there, the table
// and the JSON output.
import { join } from "node:path";
import { main as prepMain } from "../../tasks/prep.ts";
import { main as cacheMain } from "../../tasks/cache.ts";
import { UsageError } from "../../cli/run.ts";
import { assert, assertEquals, assertRejects, runTask, tempDir } from "../_helpers.ts";
import { denoTask, ROOT, writePhantoms } from "./_run.ts";

async function preppedCache(dir: string): Promise<string> {
  await writePhantoms(join(dir, "ct"), 2);
  const out = join(dir, "c.zarr");
  const r = await runTask(prepMain, [join(dir, "ct"), "--out", out, "--quiet"]);
  assertEquals(r.code, 0, r.text);
  return out;
}

Deno.test("cache inspect without a path says a path is needed (exit 2)", async () => {
  const r = await denoTask(["cache", "inspect"]);
  assertEquals(r.code, 2, r.stderr);
  assert(
    r.stderr.startsWith("cache inspect: <cache> is needed: the path of the cache folder"),
    r.stderr,
  );
  assert(r.stderr.includes('Run "deno task cache inspect --help"'), r.stderr);
  const none = await denoTask(["cache"]);
  assertEquals(none.code, 2, none.stderr);
  assert(none.stderr.includes("a command is needed: inspect"), none.stderr);
});

Deno.test("cache inspect refuses unknown options and answers --help", async () => {
  const r = await denoTask(["cache", "inspect", "x.zarr", "--jsn"]);
  assertEquals(r.code, 2, r.stderr);
  assert(r.stderr.includes("unknown option --jsn (did you mean --json?)"), r.stderr);
  for (const args of [["--help"], ["inspect", "--help"]]) {
    const h = await runTask(cacheMain, args);
    assertEquals(h.code, 0, h.text);
    assert(h.text.includes("Usage:") && h.text.includes("--case"), h.text);
  }
});

Deno.test("cache inspect --case names the case and says what the cache has", async () => {
  await using dir = await tempDir();
  const out = await preppedCache(dir.path);
  const check = async (spec: string, pattern: RegExp) => {
    const e = await assertRejects(
      () => runTask(cacheMain, ["inspect", out, "--case", spec]),
      pattern,
    );
    assert(e instanceof UsageError);
  };
  await check(
    "ct/nope",
    /--case ct\/nope: no such case in .*c\.zarr .*its groups: ct \(2 cases\); ct holds ct\/case0, ct\/case1/,
  );
  await check("case1", /did you mean ct\/case1\?/);
  await check("ct/cas1", /did you mean ct\/case1\?/);
  await check("ct", /ct is a group, of ct\/case0, ct\/case1/);
  await assertRejects(
    () => runTask(cacheMain, ["inspect", dir.path, "--case", "ct/case0"]),
    /is not a VoCo cache/,
  );
});

Deno.test("cache inspect prints an aligned table, and JSON with --json", async () => {
  await using dir = await tempDir();
  const out = await preppedCache(dir.path);
  const r = await runTask(cacheMain, ["inspect", out]);
  assertEquals(r.code, 0, r.text);
  const lines = r.text.split("\n");
  const head = lines.find((l) => l.includes("case") && l.includes("recipe"))!;
  const rows = lines.filter((l) => l.startsWith("  ct/"));
  assertEquals(rows.length, 2, r.text);
  for (const col of ["shape", "dtype", "recipe", "source"]) {
    const at = head.indexOf(col);
    for (const row of rows) assert(row[at - 1] === " " && row[at] !== " ", `${col}: ${r.text}`);
  }
  const json = JSON.parse((await runTask(cacheMain, ["inspect", out, "--json"])).text);
  assertEquals(json.cases.map((c: { name: string }) => c.name), ["case0", "case1"]);
  assertEquals(json.cases[0].recipe, "voco-v2");
  const one = await runTask(cacheMain, ["inspect", out, "--case", "ct/case0"]);
  assertEquals(one.code, 0, one.text);
  // The affine on four lines of four numbers, each attribute on its own line.
  const affine = one.text.split("\n").filter((l) =>
    /^\s+([\w.]*affine\s+)?\[\s*-?[\d.]+(\s+-?[\d.e-]+){3}\]$/.test(l)
  );
  assertEquals(affine.length, 8, one.text); // the case's and the source's
  assert(/ {2}values +0 \.\. 1, mean /.test(one.text), one.text);
  // The codec chain reads as one: each codec with its settings in parentheses.
  const chunks = one.text.split("\n").find((l) => /^ {2}chunks /.test(l))!;
  assert(
    chunks.includes(
      "sharding_indexed(chunk_shape [48, 48, 48], codecs bytes(endian little) + " +
        "blosc(cname zstd, clevel 3, shuffle shuffle, typesize 2, blocksize 0) + crc32c, " +
        "index_codecs bytes(endian little) + crc32c, index_location end)",
    ),
    chunks,
  );
  const oneJson = JSON.parse(
    (await runTask(cacheMain, ["inspect", out, "--case", "ct/case0", "--json"])).text,
  );
  assertEquals(oneJson.attributes.recipe.name, "voco-v2");
  assertEquals(oneJson.values.max, 1);
});

Deno.test("cache serve --port 0 prints the URL it picked, serves the cache and stops on Ctrl-C", async () => {
  await using dir = await tempDir();
  const out = await preppedCache(dir.path);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--frozen",
      "--allow-read",
      "--allow-env",
      "--allow-net=127.0.0.1",
      join(ROOT, "tasks", "cache.ts"),
      "serve",
      out,
      "--port",
      "0",
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const deadline = Date.now() + 30000;
  while (!/http:\/\/127\.0\.0\.1:\d+\//.test(text) && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  const url = /http:\/\/127\.0\.0\.1:\d+\//.exec(text)?.[0];
  try {
    assert(url && !url.endsWith(":0/"), text);
    const r = await fetch(`${url}ct/case0/zarr.json`, { signal: AbortSignal.timeout(10000) });
    assertEquals(r.status, 200);
    assertEquals((await r.json()).node_type, "array");
  } finally {
    child.kill("SIGINT");
    const status = await child.status;
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    await child.stderr.cancel();
    assertEquals(status.code, 0, "Ctrl-C stops the server cleanly");
  }
});
