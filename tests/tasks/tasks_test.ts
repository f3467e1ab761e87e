// Tests every task shares: --help and unknown options everywhere, help texts that stay
// true, examples that parse, and a lock file no command changes.
import { join } from "node:path";
import { type CommandSpec, helpText, parseCommand } from "../../cli/args.ts";
import { exitCodeOf, UsageError } from "../../cli/run.ts";
import { writeSafetensors } from "../../train/weights/safetensors.ts";
import { main as prepMain, PREP } from "../../tasks/prep.ts";
import { CACHE, main as cacheMain } from "../../tasks/cache.ts";
import { DEMO, demoHint, main as demoMain } from "../../tasks/demo.ts";
import { main as modelMain, MODEL } from "../../tasks/model.ts";
import { BENCH, main as benchMain } from "../../tasks/bench.ts";
import { main as pretrainMain, PRETRAIN } from "../../tasks/pretrain.ts";
import { tensorNote } from "../../bench/model.ts";
import { main as viewMain, VIEW } from "../../tasks/view.ts";
import { assert, assertEquals, assertRejects, runTask, tempDir } from "../_helpers.ts";
import { denoTask, ROOT } from "./_run.ts";

const TASKS: [CommandSpec, (args: string[]) => Promise<number>][] = [
  [PREP, prepMain],
  [CACHE, cacheMain],
  [DEMO, demoMain],
  [MODEL, modelMain],
  [BENCH, benchMain],
  [PRETRAIN, pretrainMain],
  [VIEW, viewMain],
];

/** Every command line that takes options: each task, and each subcommand with its name. */
function commands(): {
  spec: CommandSpec;
  prefix: string[];
  main: (a: string[]) => Promise<number>;
}[] {
  return TASKS.flatMap(([spec, main]) =>
    spec.subcommands
      ? [
        { spec, prefix: [], main },
        ...Object.entries(spec.subcommands).map(([name, sub]) => ({
          spec: sub,
          prefix: [name],
          main,
        })),
      ]
      : [{ spec, prefix: [], main }]
  );
}

Deno.test("every task and subcommand answers --help, without doing its work", async () => {
  for (const { spec, prefix, main } of commands()) {
    // `bench cache --help` used to run the benchmark: help returns before any work.
    const r = await runTask(main, [...prefix, "--help"]);
    assertEquals(r.code, 0, `${spec.name}: ${r.text}`);
    assert(r.text.startsWith(`deno task ${spec.name}: `), r.text);
    assert(r.text.includes("Usage:") && r.text.includes("-h, --help"), r.text);
  }
});

Deno.test("every task and subcommand refuses an unknown option", async () => {
  for (const { spec, prefix, main } of commands()) {
    if (spec.subcommands) continue;
    const e = await assertRejects(
      () => runTask(main, [...prefix, "--bogus"]),
      /^unknown option --bogus$/,
    );
    assert(e instanceof UsageError && e.command === spec.name, `${spec.name}: ${e.message}`);
  }
  for (
    const args of [["demo", "--bogus"], ["bench", "cache", "--chnk", "32"], [
      "cache",
      "inspect",
      "x",
      "--jsn",
    ]]
  ) {
    const r = await denoTask(args);
    assertEquals(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert(/unknown option --\w+/.test(r.stderr), r.stderr);
  }
});

Deno.test("help texts speak of the toolkit only, and name no flag that does not exist", () => {
  for (const { spec } of commands()) {
    const text = helpText(spec);
    assert(!/\bissue\b/i.test(text), `${spec.name} mentions an issue:\n${text}`);
    const known = new Set([...Object.keys(spec.flags ?? {}), "help"]);
    const options = text.split("Options:")[1]?.split("\n\n")[0] ?? "";
    for (const m of options.matchAll(/^ {2}(?:-\w, )?--([\w-]+)/gm)) assert(known.has(m[1]), m[1]);
  }
  assert(!helpText(DEMO).includes("--keep"), helpText(DEMO));
});

Deno.test("examples in help texts parse as written and never write into the source folder cache/", () => {
  for (const { spec } of commands()) {
    for (const example of spec.examples ?? []) {
      const words = example.replace(/\\\n/g, " ").split(/\s+/).filter(Boolean);
      assert(!/--out(=|\s+)cache(\s|$)/.test(example), example);
      const [task, ...rest] = words;
      const [top] = TASKS.find(([s]) => s.name === task)!;
      const r = parseCommand(top, rest, { cwd: ROOT });
      assert(r.help === undefined, example);
    }
  }
});

Deno.test("the demo writes ct.zarr, and its closing hint (zarr >= 3) names a case it has", async () => {
  const hint = demoHint("/tmp/x/ct.zarr");
  assert(hint.includes("zarr >= 3"), hint);
  assert(!hint.includes(".tree()"), hint); // zarr 3's tree() needs the optional rich
  await using dir = await tempDir();
  const demo = await runTask(demoMain, ["--out", dir.path, "--steps", "0"]);
  assertEquals(demo.code, 0, demo.text);
  const cache = join(dir.path, "ct.zarr");
  assert(demo.text.includes(demoHint(cache)), demo.text);
  const shown = await runTask(cacheMain, ["inspect", cache, "--case", "phantoms/phantom1_RAS"]);
  assertEquals(shown.code, 0, shown.text);
});

Deno.test("bench model says what the tensor count after each step means", () => {
  assertEquals(
    tensorNote(0, 286, 143),
    "286 added: the optimiser's 2 moments for each of 143 parameters, kept",
  );
  assertEquals(tensorNote(1, 0, 143), "none added");
  assertEquals(tensorNote(1, 5, 143), "+5 since the step before");
});

Deno.test("every task runs deno with --frozen, so no command changes deno.lock", async () => {
  const config = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json")));
  for (const [name, line] of Object.entries(config.tasks as Record<string, string>)) {
    for (const m of line.matchAll(/deno (run|test)\b[^&]*/g)) {
      assert(m[0].includes("--frozen"), `task ${name}: ${m[0]}`);
    }
  }
});

Deno.test("model check --backend tensorflow fails with the install hint and leaves deno.lock as it is", async () => {
  const lock = join(ROOT, "deno.lock");
  const before = await Deno.readFile(lock);
  try {
    // Any readable files will do: the backend loads before the weights are parsed.
    const r = await denoTask([
      "model",
      "check",
      "--weights",
      "deno.json",
      "--io",
      "deno.json",
      "--backend",
      "tensorflow",
    ]);
    assertEquals(r.code, 2, r.stderr); // nothing done: the backend is not installed
    assert(r.stderr.includes("Backend needs @tensorflow/tfjs-node"), r.stderr);
  } finally {
    const after = await Deno.readFile(lock);
    const same = after.length === before.length && after.every((b, i) => b === before[i]);
    if (!same) await Deno.writeFile(lock, before);
    assert(same, "deno task model check --backend tensorflow changed deno.lock");
  }
});

Deno.test("model check and pretrain check name the file they cannot use, and exit 2", async () => {
  await using dir = await tempDir();
  const text = join(dir.path, "notes.txt");
  await Deno.writeTextFile(text, "not weights");
  const empty = join(dir.path, "other.safetensors"); // valid, but holds nothing of ours
  await Deno.writeFile(empty, writeSafetensors([["x", { shape: [1], data: [0] }]]));
  const runs: [(a: string[]) => Promise<number>, string[], string][] = [
    [modelMain, ["check", "--weights", text, "--io", empty, "--backend", "cpu"], text],
    [modelMain, ["check", "--weights", empty, "--io", text, "--backend", "cpu"], empty],
    [pretrainMain, ["check", "--io", empty, "--backend", "cpu"], empty],
    [pretrainMain, ["check", "--io", text, "--backend", "cpu"], text],
  ];
  for (const [main, args, file] of runs) {
    const e = await assertRejects(() => runTask(main, args));
    assertEquals(exitCodeOf(e), 2, `${args.join(" ")}: ${e}`);
    assert(e.message.startsWith(`${file}: `), `${args.join(" ")}: ${e.message}`);
  }
});

Deno.test("demo --out that is a file is refused naming it (exit 2), the file untouched", async () => {
  await using dir = await tempDir();
  const file = join(dir.path, "notes.txt");
  await Deno.writeTextFile(file, "mine");
  const e = await assertRejects(() => runTask(demoMain, ["--out", file, "--steps", "0"]));
  assertEquals(exitCodeOf(e), 2, String(e));
  assert(e.message.includes(`${file} is a file`), e.message);
  assertEquals(await Deno.readTextFile(file), "mine");
});
