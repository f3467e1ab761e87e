// Tests of `prep --shard`: which process takes which cases, from flags or the environment.
import { caseShard, resolveShard } from "../../../prep/pipeline/shard_cases.ts";
import { assert, assertEquals, assertRejects } from "../../_helpers.ts";

Deno.test("caseShard() splits cases by their id alone, so adding inputs moves none", () => {
  const ids = Array.from({ length: 300 }, (_, i) => `img${String(i).padStart(4, "0")}`);
  const before = ids.map((n) => caseShard("btcv", n, 4));
  const counts = [0, 0, 0, 0];
  for (const s of before) counts[s]++;
  assert(counts.every((c) => c > 50), `balanced: ${counts}`);
  // The same ids among more inputs land where they did.
  const more = [...ids, "extra1", "extra2"].map((n) => caseShard("btcv", n, 4));
  assertEquals(more.slice(0, 300), before);
  assert(caseShard("btcv", "img0001", 4) >= 0 && caseShard("luna16", "img0001", 1) === 0);
});

Deno.test("resolveShard() takes --shard, a Slurm array, or a Kubernetes indexed Job", async () => {
  assertEquals(resolveShard("2/5", undefined, {}), { index: 2, count: 5, from: "--shard" });
  assertEquals(resolveShard(undefined, undefined, {}), undefined);
  // Slurm arrays may start at 1 (--array=1-8): the index counts from SLURM_ARRAY_TASK_MIN.
  assertEquals(
    resolveShard(undefined, undefined, {
      SLURM_ARRAY_TASK_ID: "3",
      SLURM_ARRAY_TASK_MIN: "1",
      SLURM_ARRAY_TASK_COUNT: "8",
    }),
    { index: 2, count: 8, from: "SLURM_ARRAY_TASK_ID" },
  );
  assertEquals(resolveShard(undefined, 4, { JOB_COMPLETION_INDEX: "3" }), {
    index: 3,
    count: 4,
    from: "JOB_COMPLETION_INDEX",
  });
  // --shard wins over the environment.
  assertEquals(resolveShard("0/2", undefined, { JOB_COMPLETION_INDEX: "1" })?.index, 0);
  await assertRejects(() => resolveShard("3/3", undefined, {}), /index must be 0\.\.count-1/);
  await assertRejects(() => resolveShard("1-3", undefined, {}), /--shard takes I\/N/);
  await assertRejects(() => resolveShard("1/3", 4, {}), /disagree/);
  await assertRejects(
    () => resolveShard(undefined, 4, {}),
    /--shards 4 needs this process's index/,
  );
  await assertRejects(
    () => resolveShard(undefined, 2, { JOB_COMPLETION_INDEX: "x" }),
    /JOB_COMPLETION_INDEX must be a whole number/,
  );
});
