// The cache's promise, fuzzed: hundreds of seeded single damages (bytes flipped, truncated
// or appended, files deleted, swapped or copied within the cache or from another one,
// metadata fields edited, the consolidated copy edited, case folders copied or swapped) to
// a small two-dataset cache in both layouts, plain and consolidated. After each, either
// `cache verify` finds it, naming each case whose reads changed, or every reader returns
// what it did; read errors are tagged and say what and where. A failure prints the seed
// and the damage, to run again with VOCO_FUZZ_SEED=<seed> VOCO_FUZZ_N=1.
// More damages: VOCO_FUZZ_N=5000 deno test -A tests/cache/damage_fuzz_test.ts; another
// storage: VOCO_FUZZ_COMPRESSOR=lorenzo (any --compressor of prep).
import { join } from "node:path";
import { assert, tempDir } from "../_helpers.ts";
import { checkPromise, copyTree, damage, fuzzCaches, KINDS, rng, snapshot } from "./_damage.ts";

const N = Number(Deno.env.get("VOCO_FUZZ_N") ?? 320);
const SEED = Number(Deno.env.get("VOCO_FUZZ_SEED") ?? 1);

Deno.test(`cache damage fuzzer: ${N} seeded single damages keep the promise`, async () => {
  await using dir = await tempDir();
  const caches = await fuzzCaches(dir.path);
  const names = Object.keys(caches.variants);
  const cases = ["alpha/case0", "alpha/case1", "beta/case0", "beta/case1"];
  const sound = new Map<string, Map<string, string>>();
  for (const v of names) {
    const snap = await snapshot(caches.variants[v], cases);
    for (const [k, value] of snap) assert(!value.startsWith("!"), `${v} ${k}: ${value}`);
    sound.set(v, snap);
  }
  const tally: Record<string, { tried: number; caught: number; changed: number }> = {};
  const failures: string[] = [];
  let tried = 0;
  for (let i = 0; tried < N; i++) {
    const seed = SEED + i;
    const r = rng(seed);
    const variant = names[Math.floor(r() * names.length)];
    const kind = KINDS[Math.floor(r() * KINDS.length)];
    const root = join(dir.path, `work-${seed}`);
    await copyTree(caches.variants[variant], root);
    try {
      const d = await damage(root, caches.elsewhere[variant], r, kind);
      if (!d) continue;
      tried++;
      // One in four damages to a consolidated cache is verified over HTTP too.
      const http = variant.includes("consolidated") && r() < 0.25;
      const o = await checkPromise(root, sound.get(variant)!, cases, http);
      const t = tally[d.kind] ??= { tried: 0, caught: 0, changed: 0 };
      t.tried++;
      if (o.caught) t.caught++;
      if (o.changed) t.changed++;
      for (const b of o.breaches) {
        failures.push(`seed ${seed} (${variant}), ${d.kind}: ${d.detail}\n    ${b}`);
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  }
  console.log(`seeds ${SEED}..: ${tried} damages (kind: tried/caught by verify/changed a read)`);
  for (const [k, t] of Object.entries(tally)) {
    console.log(`  ${k.padEnd(13)} ${t.tried}/${t.caught}/${t.changed}`);
  }
  assert(
    failures.length === 0,
    `${failures.length} breaches:\n${failures.slice(0, 40).join("\n")}`,
  );
});
