// A damaged cache: every entry that can be read is still listed, prep rebuilds what is
// damaged, and a damaged chunk fails its read with the case and the reason.
import { join } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { makePhantom } from "../../prep/synthetic/phantom.ts";
import { writeNifti } from "../../prep/formats/write_nifti.ts";
import {
  cleanStaging,
  createStagingRun,
  initCache,
  listCases,
  STAGING_STALE_MS,
} from "../../cache/write/cache_dir.ts";
import { readCase } from "../../cache/read/read_case.ts";
import { main as cacheMain } from "../../tasks/cache.ts";
import { main as prepMain } from "../../tasks/prep.ts";
import { assert, assertEquals, assertRejects, runTask, tempDir } from "../_helpers.ts";

async function preppedCache(dir: string): Promise<{ inputs: string; out: string }> {
  const inputs = join(dir, "in"), out = join(dir, "cache");
  await Deno.mkdir(inputs);
  for (const name of ["a", "b"]) {
    await Deno.writeFile(
      join(inputs, `${name}.nii.gz`),
      writeNifti(makePhantom({ shape: [40, 36, 30] })),
    );
  }
  const { code, text } = await runTask(prepMain, [
    inputs,
    "--out",
    out,
    "--quiet",
    "--dataset-name",
    "ds",
  ]);
  assertEquals(code, 0, text);
  return { inputs, out };
}

Deno.test("listCases() and initCache() name a folder that is no cache, missing, or a file", async () => {
  await using dir = await tempDir();
  await Deno.writeTextFile(join(dir.path, "file"), "x");
  await assertRejects(
    () => initCache(join(dir.path, "file")),
    /file is a file, not a cache folder/,
  );
  await assertRejects(() => initCache(dir.path), /is not empty and not a cache \(found "file"\)/);
  await assertRejects(() => listCases(dir.path), /is not a VoCo cache \(no Zarr group/);
  await assertRejects(() => listCases(join(dir.path, "nope")), /Cache .*nope does not exist/);
});

Deno.test("damaged metadata: inspect lists the rest and exits 1; prep rebuilds it", async () => {
  await using dir = await tempDir();
  const { inputs, out } = await preppedCache(dir.path);
  await Deno.writeTextFile(join(out, "ds", "a", "zarr.json"), "{trunc");
  const listed = await listCases(out);
  assertEquals(listed.map((c) => [c.name, Boolean(c.error)]), [["a", true], ["b", false]]);
  const inspect = await runTask(cacheMain, ["inspect", out]);
  assertEquals(inspect.code, 1, inspect.text);
  assert(/BROKEN ds\/a: Unreadable Zarr metadata .*zarr\.json/.test(inspect.text), inspect.text);
  assert(/ {2}ds\/b {2}\d+x\d+x\d+ {2}/.test(inspect.text), inspect.text);

  // The dataset group's metadata damaged too: prep rewrites it and rebuilds case a only.
  await Deno.writeTextFile(join(out, "ds", "zarr.json"), "");
  const again = await runTask(prepMain, [inputs, "--out", out, "--dataset-name", "ds"]);
  assertEquals(again.code, 0, again.text);
  assert(/1 written, 1 unchanged, 0 failed/.test(again.text), again.text);
  const clean = await runTask(cacheMain, ["inspect", out]);
  assertEquals(clean.code, 0, clean.text);
  assert(!clean.text.includes("BROKEN"), clean.text);
});

Deno.test("a truncated shard fails the read, naming the case and the reason", async () => {
  await using dir = await tempDir();
  const { out } = await preppedCache(dir.path);
  const chunk = join(out, "ds", "b", "c", "0", "0", "0");
  const bytes = await Deno.readFile(chunk);
  await Deno.writeFile(chunk, bytes.subarray(0, bytes.length >> 1));
  const store = new FileSystemStore(out);
  await readCase(store, "/ds/a");
  await assertRejects(
    () => readCase(store, "/ds/b"),
    /Case \/ds\/b: shard index of c\/0\/0\/0: crc32c mismatch: stored 0x[0-9a-f]{8}, computed/,
  );
});

Deno.test("cleanStaging() under the tasks' permissions keeps a live run's staging and removes a killed one's", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "cache");
  await initCache(root);
  const child = new URL("./_staging_child.ts", import.meta.url).pathname;
  // The prep task's permissions: no access to /proc, so only the lock can tell.
  const perms = ["--allow-read", "--allow-write", "--allow-env", "--allow-sys"];
  const deno = (args: string[]) =>
    new Deno.Command(Deno.execPath(), { args: ["run", ...perms, child, ...args], stdout: "piped" });
  const holder = deno(["hold", root]).spawn();
  const reader = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const held = (await reader.read()).value!.trim().split("/").pop()!;
  const clean = async () =>
    JSON.parse(new TextDecoder().decode((await deno(["clean", root]).output()).stdout));
  try {
    assertEquals(await clean(), [held]); // alive: kept
  } finally {
    holder.kill("SIGKILL");
    await holder.status;
    reader.releaseLock();
    await holder.stdout.cancel().catch(() => {});
  }
  assertEquals(await clean(), []); // killed: its lock is free, the folder goes
});

Deno.test("cleanStaging() removes abandoned runs only: a free lock here, or a stale heartbeat", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "cache");
  await initCache(root);
  const host = Deno.hostname();
  const now = Date.now();
  const owners: Record<string, unknown> = {
    deadHere: { pid: 2 ** 22 + 7, host, heartbeat: now }, // its lock file, held by nobody
    staleHere: { pid: 2 ** 22 + 8, host, heartbeat: now - STAGING_STALE_MS - 1 }, // no lock
    liveElsewhere: { pid: 1, host: `${host}-other`, heartbeat: now - 60_000 },
    staleElsewhere: { pid: 1, host: `${host}-other`, heartbeat: now - STAGING_STALE_MS - 1 },
    mine: { pid: Deno.pid, host, heartbeat: now - STAGING_STALE_MS - 1 },
  };
  for (const [name, owner] of Object.entries(owners)) {
    await Deno.mkdir(join(root, ".staging", name, "case"), { recursive: true });
    await Deno.writeTextFile(join(root, ".staging", name, "owner.json"), JSON.stringify(owner));
  }
  await Deno.writeTextFile(join(root, ".staging", "deadHere", "owner.lock"), "");
  const run = await createStagingRun(root);
  const owner = JSON.parse(await Deno.readTextFile(join(run.dir, "owner.json")));
  assertEquals([owner.pid, owner.host], [Deno.pid, host]);
  await cleanStaging(root);
  const left = (await Array.fromAsync(Deno.readDir(join(root, ".staging")))).map((e) => e.name);
  assertEquals(left.sort(), ["liveElsewhere", "mine", run.dir.split("/").pop()!].sort());
  await run.close();
  assert(!(await Deno.stat(run.dir).then(() => true, () => false)), "close() removes the run");
});
