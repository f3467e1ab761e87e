// Tests of the task argument parser: values, defaults, paths, help and usage errors.
import {
  closest,
  defineCommand,
  editDistance,
  helpText,
  parseCommand,
  userCwd,
} from "../../cli/args.ts";
import { UsageError } from "../../cli/run.ts";
import { assert, assertEquals } from "../_helpers.ts";

const SPEC = defineCommand({
  name: "tool",
  summary: "a test command",
  positionals: { name: "input", help: "files to read", type: "path" },
  flags: {
    out: { type: "path", arg: "DIR", help: "output folder" },
    workers: { type: "number", integer: true, min: 1, help: "parallel workers" },
    level: { type: "number", integer: true, default: 3, help: "compression level" },
    window: { type: "numbers", counts: [2], arg: "LO,HI", help: "window in HU" },
    spacing: { type: "numbers", counts: [1, 3], help: "spacing in mm" },
    dtype: { type: "string", choices: ["uint16", "uint8"], default: "uint16", help: "type" },
    dataset: { type: "list", help: "a dataset; repeatable" },
    quiet: { type: "boolean", help: "say less" },
  },
  examples: ["tool a.nii.gz --out ct.zarr"],
});

const SUBS = defineCommand({
  name: "cache",
  summary: "look inside",
  subcommands: {
    inspect: {
      name: "cache inspect",
      summary: "list cases",
      positionals: { name: "cache", help: "the cache folder", type: "path", min: 1, max: 1 },
      flags: { json: { type: "boolean", help: "JSON" } },
    },
  },
});

function usage(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert(e instanceof UsageError, `not a UsageError: ${e}`);
    return (e as Error).message;
  }
  throw new Error("no usage error");
}

Deno.test("parseCommand() gives typed values, defaults and positionals resolved from cwd", () => {
  const r = parseCommand(SPEC, ["a.nii.gz", "--out", "ct.zarr", "--workers=2", "--quiet"], {
    cwd: "/home/me/data",
  });
  assert(r.help === undefined);
  assertEquals(r.positionals, ["/home/me/data/a.nii.gz"]);
  assertEquals(r.values.out, "/home/me/data/ct.zarr");
  assertEquals(r.values.workers, 2);
  assertEquals(r.values.level, 3);
  assertEquals(r.values.dtype, "uint16");
  assertEquals(r.values.dataset, []);
  assertEquals(r.values.quiet, true);
  assertEquals(r.values.window, undefined);
  const abs = parseCommand(SPEC, ["--out", "/abs/ct.zarr", "../x"], { cwd: "/home/me/data" });
  assert(abs.help === undefined);
  assertEquals([abs.values.out, abs.positionals[0]], ["/abs/ct.zarr", "/home/me/x"]);
});

Deno.test("parseCommand() takes negative numbers and numbers separated by commas or spaces", () => {
  const r = parseCommand(SPEC, ["--window", "-1000,500", "--spacing", "1.5", "1.5", "2", "x"]);
  assert(r.help === undefined);
  assertEquals(r.values.window, [-1000, 500]);
  assertEquals(r.values.spacing, [1.5, 1.5, 2]);
  assertEquals(r.positionals.length, 1);
  const spaced = parseCommand(SPEC, ["--window", "-175", "250", "--level", "-1"]);
  assert(spaced.help === undefined);
  assertEquals([spaced.values.window, spaced.values.level], [[-175, 250], -1]);
  const one = parseCommand(SPEC, ["--spacing", "2", "2.nii.gz"]);
  assert(one.help === undefined);
  assertEquals(one.values.spacing, [2]);
  assertEquals(
    usage(() => parseCommand(SPEC, ["--spacing", "1.5", "1.5"])),
    '--spacing takes one or three numbers, separated by commas or spaces (N|N,N,N), got "1.5 1.5"',
  );
  assert(
    /--window takes two numbers.*got "1,2,3"/.test(
      usage(() => parseCommand(SPEC, ["--window", "1,2,3"])),
    ),
  );
});

Deno.test("unknown options and commands are refused with the closest name", () => {
  assertEquals(
    usage(() => parseCommand(SPEC, ["--worker", "2"])),
    "unknown option --worker (did you mean --workers?)",
  );
  assertEquals(usage(() => parseCommand(SPEC, ["--bogus"])), "unknown option --bogus");
  assertEquals(usage(() => parseCommand(SPEC, ["-x"])), "unknown option -x");
  assertEquals(
    usage(() => parseCommand(SUBS, ["inpsect", "c"])),
    'unknown command "inpsect" (did you mean inspect?)',
  );
  assertEquals(
    usage(() => parseCommand(SUBS, ["inspect", "c", "--jsn"])),
    "unknown option --jsn (did you mean --json?)",
  );
  assertEquals(usage(() => parseCommand(SUBS, [])), "a command is needed: inspect");
  assertEquals(
    usage(() => parseCommand(SPEC, ["--dtype", "uint61"])),
    '--dtype takes uint16, uint8, got "uint61" (did you mean uint16?)',
  );
});

Deno.test("bad values, missing values, repeated flags and positionals are usage errors", () => {
  assertEquals(
    usage(() => parseCommand(SPEC, ["--workers", "0"])),
    '--workers takes an integer >= 1, got "0"',
  );
  assertEquals(
    usage(() => parseCommand(SPEC, ["--workers", "two"])),
    '--workers takes an integer >= 1, got "two"',
  );
  assertEquals(usage(() => parseCommand(SPEC, ["--out"])), "--out needs a value (DIR)");
  assertEquals(usage(() => parseCommand(SPEC, ["--out", "--quiet"])), "--out needs a value (DIR)");
  assertEquals(usage(() => parseCommand(SPEC, ["--out="])), "--out needs a value (DIR)");
  assertEquals(usage(() => parseCommand(SPEC, ["--quiet=yes"])), "--quiet takes no value");
  assertEquals(
    usage(() => parseCommand(SPEC, ["--out", "a", "--out", "b"])),
    "--out is given twice",
  );
  assertEquals(
    usage(() => parseCommand(SUBS, ["inspect"])),
    "<cache> is needed: the cache folder",
  );
  assert(/unexpected argument "b"/.test(usage(() => parseCommand(SUBS, ["inspect", "a", "b"]))));
  const e = (() => {
    try {
      parseCommand(SUBS, ["inspect"]);
    } catch (e) {
      return e as UsageError;
    }
  })();
  assertEquals(e?.command, "cache inspect");
  const list = parseCommand(SPEC, ["--dataset", "a", "--dataset=b", "--", "--not-a-flag"]);
  assert(list.help === undefined);
  assertEquals([list.values.dataset, list.positionals.length], [["a", "b"], 1]);
});

Deno.test("--help anywhere gives the help text, built from the flags", () => {
  for (const args of [["--help"], ["-h"], ["--bogus", "--help"], ["x", "--out", "y", "-h"]]) {
    const r = parseCommand(SPEC, args);
    assert(r.help !== undefined, args.join(" "));
  }
  const text = helpText(SPEC);
  for (const flag of Object.keys(SPEC.flags)) assert(text.includes(`--${flag}`), flag);
  assert(text.includes("--level N") && text.includes("compression level (default: 3)"), text);
  assert(text.includes("-h, --help"), text);
  assert(text.includes("  deno task tool a.nii.gz --out ct.zarr"), text);
  const top = parseCommand(SUBS, ["--help"]);
  assert(top.help !== undefined && top.help.includes("inspect") && top.help.includes("Commands:"));
  const sub = parseCommand(SUBS, ["inspect", "--help"]);
  assert(sub.help !== undefined && sub.help.startsWith("deno task cache inspect: list cases"));
});

Deno.test("userCwd() is INIT_CWD, the folder deno task was started in, else the working folder", () => {
  const saved = Deno.env.get("INIT_CWD");
  try {
    Deno.env.set("INIT_CWD", "/somewhere/else");
    assertEquals(userCwd(), "/somewhere/else");
    const r = parseCommand(SPEC, ["--out", "ct.zarr"]);
    assert(r.help === undefined && r.values.out === "/somewhere/else/ct.zarr");
    Deno.env.delete("INIT_CWD");
    assertEquals(userCwd(), Deno.cwd());
  } finally {
    if (saved === undefined) Deno.env.delete("INIT_CWD");
    else Deno.env.set("INIT_CWD", saved);
  }
});

Deno.test("editDistance() and closest() suggest typos, not unrelated names", () => {
  assertEquals(editDistance("worker", "workers"), 1);
  assertEquals(editDistance("chset", "chest"), 1);
  assertEquals(editDistance("", "abc"), 3);
  assertEquals(closest("chnk", ["chunk", "crops"]), "chunk");
  assertEquals(closest("chset", ["voco-v2", "voco-v1", "chest"]), "chest");
  assertEquals(closest("comp", ["compressor", "chunk"]), "compressor");
  assertEquals(closest("x", ["a", "b"]), undefined);
  assertEquals(closest("bogus", ["out", "workers"]), undefined);
});
