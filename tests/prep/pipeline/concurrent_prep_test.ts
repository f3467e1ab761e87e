// Real processes writing one cache: two preps at once with overlapping inputs, kill -9 at
// several moments then a resume, and three `--shard` processes against a single run.
import { join } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { listCases } from "../../../cache/write/cache_dir.ts";
import { readCase } from "../../../cache/read/read_case.ts";
import { verifyCache } from "../../../cache/inspect/verify.ts";
import { writePhantoms } from "../../tasks/_run.ts";
import { assert, assertEquals, tempDir } from "../../_helpers.ts";

const TASK = new URL("../../../tasks/prep.ts", import.meta.url).pathname;

function prep(args: string[], env: Record<string, string> = {}): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", TASK, ...args, "--quiet", "--workers", "1"],
    stdout: "piped",
    stderr: "piped",
    env,
  }).spawn();
}

async function finish(child: Deno.ChildProcess): Promise<{ code: number; text: string }> {
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, text: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

async function assertSound(out: string): Promise<void> {
  const report = await verifyCache(out);
  const broken = report.checks.filter((c) => c.problems.length);
  assertEquals(broken.map((c) => `${c.name}: ${c.problems}`), []);
}

async function linkInputs(from: string, to: string, names: string[]): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for (const n of names) await Deno.link(join(from, `${n}.nii.gz`), join(to, `${n}.nii.gz`));
}

Deno.test("two preps at once into one cache, with overlapping inputs, lose and break nothing", async () => {
  await using dir = await tempDir();
  const all = join(dir.path, "all");
  await writePhantoms(all, 8, [60, 50, 40]);
  const names = Array.from({ length: 8 }, (_, i) => `case${i}`);
  await linkInputs(all, join(dir.path, "a"), names.slice(0, 5));
  await linkInputs(all, join(dir.path, "b"), names.slice(3));
  const out = join(dir.path, "c.zarr");
  const runs = ["a", "b"].map((g) =>
    prep([join(dir.path, g), "--out", out, "--dataset-name", "ds"])
  );
  for (const r of await Promise.all(runs.map(finish))) assertEquals(r.code, 0, r.text);
  assertEquals((await listCases(out)).map((c) => c.name), names);
  await assertSound(out);
  assertEquals(
    await Array.fromAsync(Deno.readDir(join(out, ".staging"))).then((e) =>
      e.filter((x) => x.isDirectory)
    ),
    [],
  );
});

Deno.test("kill -9 at any moment leaves a cache that verify passes and the next prep completes", async () => {
  await using dir = await tempDir();
  const inputs = join(dir.path, "in");
  await writePhantoms(inputs, 5, [150, 150, 60]);
  const out = join(dir.path, "c.zarr");
  // Moments: while starting, as the first case is written, and in the middle of the run.
  for (const [i, when] of [[0, 400], [1, "first"], [2, "third"]] as const) {
    const cache = `${out}${i}`;
    const child = prep([inputs, "--out", cache, "--dataset-name", "ds"]);
    const t0 = Date.now();
    const want = when === "first" ? 1 : when === "third" ? 3 : 0;
    while (Date.now() - t0 < 60_000) {
      await new Promise((r) => setTimeout(r, typeof when === "number" ? when : 50));
      if (typeof when === "number") break;
      if ((await listCases(cache).catch(() => [])).length >= want) break;
    }
    child.kill("SIGKILL");
    await child.output();
    if (await Deno.stat(join(cache, "zarr.json")).then(() => true, () => false)) {
      await assertSound(cache);
    }
    const resumed = await finish(prep([inputs, "--out", cache, "--dataset-name", "ds"]));
    assertEquals(resumed.code, 0, resumed.text);
    assertEquals((await listCases(cache)).length, 5);
    await assertSound(cache);
  }
});

Deno.test("three --shard processes at once build the same cache as one process", async () => {
  await using dir = await tempDir();
  const inputs = join(dir.path, "in");
  await writePhantoms(inputs, 9, [48, 40, 30]);
  const single = join(dir.path, "single.zarr"), sharded = join(dir.path, "sharded.zarr");
  const one = await finish(prep([inputs, "--out", single]));
  assertEquals(one.code, 0, one.text);
  const shards = await Promise.all(
    [0, 1, 2].map((i) => finish(prep([inputs, "--out", sharded, "--shard", `${i}/3`]))),
  );
  let taken = 0;
  for (const r of shards) {
    assertEquals(r.code, 0, r.text);
    taken += Number(r.text.match(/shard \d\/3 \(from --shard\): (\d+) of 9 case/)![1]);
  }
  assertEquals(taken, 9);
  // The Kubernetes form: JOB_COMPLETION_INDEX with --shards, into a third cache.
  const k8s = join(dir.path, "k8s.zarr");
  for (const i of [0, 1, 2]) {
    const r = await finish(
      prep([inputs, "--out", k8s, "--shards", "3"], { JOB_COMPLETION_INDEX: String(i) }),
    );
    assertEquals(r.code, 0, r.text);
  }
  const a = await listCases(single), b = await listCases(sharded), c = await listCases(k8s);
  assertEquals(b.map((x) => x.name), a.map((x) => x.name));
  assertEquals(c.map((x) => x.name), a.map((x) => x.name));
  for (const x of a) {
    const path = `/${x.dataset}/${x.name}` as const;
    const [u, v] = [
      await readCase(new FileSystemStore(single), path),
      await readCase(new FileSystemStore(sharded), path),
    ];
    assertEquals(v.attributes.fingerprint, u.attributes.fingerprint);
    assert(u.data.every((val, i) => val === v.data[i]), `${x.name}: same values`);
  }
  await assertSound(sharded);
});
