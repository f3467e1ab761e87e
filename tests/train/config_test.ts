// Tests of a run's settings: validation naming the flag, warnings, which settings may change
// on resume, the flags' mapping, and the memory plan (crops per pass, refusals by flag).
import { checkConfig, configDiff, pretrainConfig, settingsFromFlags } from "../../train/config.ts";
import { planMemory } from "../../train/memory.ts";
import { assert, assertEquals } from "../_helpers.ts";

const base = () => pretrainConfig("v2", ["/data/ct.zarr"]);

function refusal(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assertEquals((e as { kind?: string }).kind, "usage", (e as Error).message);
    return (e as Error).message;
  }
  throw new Error("not refused");
}

Deno.test("checkConfig() names the flag and the value of a bad setting, from flags or a file", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ roi: 80 }, /--roi takes a multiple of 32, got 80/],
    [{ grid: 1e9 }, /--grid takes an integer 2\.\.64, got 1000000000/],
    [{ featureSize: 40 }, /--feature-size takes one of 12, 24, 48, 96, 192, got 40/],
    [{ lr: "0.1" }, /--lr takes a number/],
    [{ headDims: [1, 2] }, /--head takes three positive integers/],
    [{ backend: "gpu" }, /--backend takes one of auto, cpu, wasm/],
    [{ steps: -5 }, /--steps takes an integer 1\.\./],
    [{ bathSize: 4 }, /unknown setting "bathSize"/],
  ];
  for (const [change, pattern] of cases) {
    const message = refusal(() => checkConfig({ ...base(), ...change } as never));
    assert(pattern.test(message), `${JSON.stringify(change)}: ${message}`);
  }
  assertEquals(checkConfig({ ...base(), warmupSteps: 100, steps: 1000 }), []);
});

Deno.test("a warm-up longer than the run is warned about, with the lr it reaches", () => {
  const [w] = checkConfig({ ...base(), steps: 4, warmupSteps: 5000 });
  assert(/--warmup-steps 5000 is longer than the run \(--steps 4\).*8\.0e-8/.test(w), w);
});

Deno.test("configDiff() lets bookkeeping settings change on resume and refuses the others", () => {
  const stored = base();
  const d = configDiff(stored, {
    ...stored,
    steps: 10,
    workers: 0,
    featureSize: 24,
    lr: 1e-3,
    caches: ["/other.zarr"],
  });
  assertEquals(d.allowed, ["--steps: 100000 -> 10", "--workers: 2 -> 0"]);
  assertEquals(d.refused, [
    "--feature-size: 48 -> 24",
    "--lr: 0.0001 -> 0.001",
    '--cache: ["/data/ct.zarr"] -> ["/other.zarr"]',
  ]);
});

Deno.test("settingsFromFlags() keeps only the flags given", () => {
  assertEquals(settingsFromFlags({ steps: 8, quiet: true, "no-augment": false }), { steps: 8 });
  assertEquals(
    settingsFromFlags({ recipe: "voco-v1", head: 64, repeat: ["btcv=8"], datasets: "a, b" }),
    { version: "v1", datasets: ["a", "b"], repeat: { btcv: 8 }, headDims: [64, 64, 64] },
  );
  assert(/--repeat takes DATASET=N/.test(refusal(() => settingsFromFlags({ repeat: ["x"] }))));
});

Deno.test("the memory plan splits the reference setting on wasm and keeps tiny cpu runs in one pass", () => {
  const reference = planMemory(base(), "wasm");
  assertEquals(reference.rows, 44);
  assert(reference.cropBatch !== undefined && reference.cropBatch >= 1, `${reference.cropBatch}`);
  assert(reference.peakBytes <= reference.budgetBytes!, JSON.stringify(reference));
  const tiny = { ...base(), featureSize: 12, headDims: [64, 64, 64] as [number, number, number] };
  const small = { ...tiny, batchSize: 1, swBatchSize: 1, grid: 2 };
  assertEquals(planMemory(small, "cpu", { systemBytes: 24e9 }).cropBatch, undefined);
  // One taped pass costs about 1 GB per 64³ crop at feature size 12: not 5 crops on wasm.
  assertEquals(planMemory(small, "wasm").cropBatch, 5);
  // A crop batch given is kept when it fits and refused when it cannot.
  assertEquals(planMemory({ ...base(), cropBatch: 1 }, "wasm").cropBatch, 1);
  assert(
    /lower --crop-batch \(now 40\)/.test(
      refusal(() => planMemory({ ...base(), cropBatch: 40 }, "wasm")),
    ),
  );
});

Deno.test("sizes that cannot be allocated are refused naming the flag to change", () => {
  const system = { systemBytes: 24e9 };
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ roi: 1e9 }, "cpu", /lower --roi \(now 1000000000\)/],
    [{ headDims: [1e12, 1e12, 1e12] }, "cpu", /lower --head/],
    [{ featureSize: 192 }, "wasm", /weights and optimiser state need .* lower --feature-size/],
    [
      { roi: 256, batchSize: 1, grid: 2, swBatchSize: 1 },
      "wasm",
      /256³ .* lower --roi \(now 256\) or --feature-size/,
    ],
    [{ batchSize: 4096, grid: 64 }, "cpu", /lower --batch-size \(now 4096\) or --grid/],
  ];
  for (const [change, backend, pattern] of cases) {
    const message = refusal(() => planMemory({ ...base(), ...change } as never, backend, system));
    assert(pattern.test(message), `${JSON.stringify(change)}: ${message}`);
  }
});
