// `deno task view` as a user runs it: it prints a URL on 127.0.0.1 that serves the first
// case, stops on Ctrl-C, and refuses with exit code 2 a cache that cannot be opened.
import { join } from "node:path";
import { tinyCache } from "../train/_tiny_cache.ts";
import { assert, assertEquals, tempDir } from "../_helpers.ts";
import { denoTask, ROOT, userEnv } from "./_run.ts";

Deno.test("deno task view prints a URL that opens on the first case and stops on Ctrl-C", async () => {
  await using dir = await tempDir();
  const cache = await tinyCache(dir.path, 1);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "--config", join(ROOT, "deno.json"), "view", cache, "--port", "0"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: userEnv(),
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!/http:\/\/127\.0\.0\.1:\d+\/\S*/.test(out)) {
    const { value, done } = await reader.read();
    if (done) break;
    out += value;
  }
  const url = out.match(/http:\/\/127\.0\.0\.1:\d+\/\S*/)?.[0];
  assert(url, `no URL in: ${out}`);
  assert(url.endsWith("?cache=0&case=phantoms/case0"), url);
  const state = await (await fetch(new URL("/api/state", url))).json();
  assertEquals(state.cases.length, 1);
  child.kill("SIGINT");
  const status = await child.status;
  reader.releaseLock();
  await child.stdout.cancel().catch(() => {});
  await child.stderr.cancel();
  assertEquals(status.code, 0);
});

Deno.test("deno task view refuses a cache that is not there, naming it", async () => {
  const r = await denoTask(["view", "no-such.zarr", "--port", "0"]);
  assertEquals(r.code, 2, r.stderr);
  assert(r.stderr.includes("no-such.zarr"), r.stderr);
});
