// Tests of the run folder's files: metrics cut by a kill, damaged settings named, writes
// that fail on a full disk leave nothing behind, and the lock between processes.
import { join } from "node:path";
import {
  type MetricsRow,
  readMetrics,
  readRunConfig,
  readRunRecord,
  writeFileAtomic,
  writeMetrics,
} from "../../../train/run/folder.ts";
import { LOCK_FILE, lockRun } from "../../../train/run/lock.ts";
import { assert, assertEquals, assertRejects, tempDir } from "../../_helpers.ts";

const row = (step: number): MetricsRow => ({
  step,
  loss: 1 / step,
  intra: 0.5,
  lr: 1e-4,
  samples_per_s: 1,
  data_wait: 0,
  seconds: 2.5,
});

Deno.test("readMetrics() drops a last line cut anywhere by a kill during the append", async () => {
  await using tmp = await tempDir();
  const rows = [row(1), row(2), row(3)];
  await writeMetrics(tmp.path, rows);
  const full = await Deno.readTextFile(join(tmp.path, "metrics.jsonl"));
  const lastStart = full.lastIndexOf("\n", full.length - 2) + 1;
  // Every length the append of row 3 could have left: nothing of it, part of it, all but
  // the newline, all of it.
  for (let cut = lastStart; cut <= full.length; cut++) {
    await Deno.writeTextFile(join(tmp.path, "metrics.jsonl"), full.slice(0, cut));
    const got = await readMetrics(tmp.path);
    const whole = cut >= full.length - 1;
    assertEquals(got.map((r) => r.step), whole ? [1, 2, 3] : [1, 2], `cut at ${cut}`);
  }
  assertEquals((await readMetrics(tmp.path, 2)).map((r) => r.step), [1, 2]);
});

Deno.test("readMetrics() names the file and the line of a damaged row that is not the last", async () => {
  await using tmp = await tempDir();
  const path = join(tmp.path, "metrics.jsonl");
  await Deno.writeTextFile(
    path,
    `${JSON.stringify(row(1))}\n{"step": 2, "lo\n${JSON.stringify(row(3))}\n`,
  );
  await assertRejects(() => readMetrics(tmp.path), /metrics\.jsonl, line 2: not a metrics row/);
  await Deno.writeTextFile(path, `${JSON.stringify(row(1))}\n[1,2]\n`);
  await assertRejects(() => readMetrics(tmp.path), /line 2: not a metrics row/);
});

Deno.test("a damaged config.json is named as such, not as a missing one", async () => {
  await using tmp = await tempDir();
  await assertRejects(() => readRunConfig(tmp.path), /is not a run folder \(no config\.json\)/);
  assertEquals(await readRunRecord(tmp.path), undefined);
  await Deno.writeTextFile(join(tmp.path, "config.json"), '{"config": {"version": "v2"');
  const e = await assertRejects(() => readRunConfig(tmp.path), /config\.json is not valid JSON/);
  assertEquals((e as { kind?: string }).kind, "bad-input");
  await Deno.writeTextFile(join(tmp.path, "config.json"), "[]");
  await assertRejects(() => readRunConfig(tmp.path), /holds no "config" object/);
});

Deno.test("writeFileAtomic() on a full disk removes its temporary file and keeps the old file", async () => {
  if (!(await Deno.stat("/dev/full").catch(() => undefined))) {
    console.warn("Skipping: no /dev/full here to fill a disk with.");
    return;
  }
  await using tmp = await tempDir();
  const path = join(tmp.path, "ckpt-0000002.safetensors");
  await Deno.writeTextFile(path, "the good one");
  // The temporary file is a link to /dev/full: every write fails with "no space left".
  await Deno.symlink("/dev/full", `${path}.tmp-${Deno.pid}`);
  await assertRejects(
    () => writeFileAtomic(path, new Uint8Array(1 << 20)),
    /space|ENOSPC|full/i,
  );
  assertEquals([...Deno.readDirSync(tmp.path)].map((e) => e.name), [
    "ckpt-0000002.safetensors",
  ]);
  assertEquals(await Deno.readTextFile(path), "the good one");
});

Deno.test("a second lock of a run folder is refused naming the holder; a lock file left behind does not block", async () => {
  await using tmp = await tempDir();
  const lock = await lockRun(tmp.path);
  const e = await assertRejects(
    () => lockRun(tmp.path),
    new RegExp(`is in use by process ${Deno.pid} on .* since`),
  );
  assertEquals((e as { kind?: string }).kind, "bad-input");
  await lock.release();
  assert(!(await Deno.stat(join(tmp.path, LOCK_FILE)).catch(() => undefined)), "released");
  // What a killed holder leaves: the file, with its owner, but no lock on it.
  await Deno.writeTextFile(
    join(tmp.path, LOCK_FILE),
    JSON.stringify({ pid: 1, host: "elsewhere", since: "then" }),
  );
  const taken = await lockRun(tmp.path);
  const owner = JSON.parse(await Deno.readTextFile(join(tmp.path, LOCK_FILE)));
  assertEquals(owner.pid, Deno.pid);
  await taken.release();
});
