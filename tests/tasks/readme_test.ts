// The README's commands, as a newcomer copies them: they parse, never write into the
// toolkit's own `cache/` folder, and the first ones run as written on the shared data.
import { join } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { type CommandSpec, parseCommand } from "../../cli/args.ts";
import { PREP } from "../../tasks/prep.ts";
import { CACHE } from "../../tasks/cache.ts";
import { DEMO } from "../../tasks/demo.ts";
import { MODEL } from "../../tasks/model.ts";
import { BENCH } from "../../tasks/bench.ts";
import { VIEW } from "../../tasks/view.ts";
import { PRETRAIN } from "../../tasks/pretrain.ts";
import { readCaseAttributes } from "../../cache/read/read_case.ts";
import { HAVE_SHARED, SHARED } from "../_shared.ts";
import { assert, assertEquals, tempDir } from "../_helpers.ts";
import { denoTask, ROOT } from "./_run.ts";

/** README.md, the first screen, and the references beside the code, which the same rules hold. */
const READMES = [
  "README.md",
  "prep/README.md",
  "cache/README.md",
  "train/README.md",
  "tasks/README.md",
  "view/README.md",
];
const README = Deno.readTextFileSync(join(ROOT, "README.md"));
const ALL = READMES.map((f) => Deno.readTextFileSync(join(ROOT, f))).join("\n");
const SPECS: Record<string, CommandSpec> = {
  prep: PREP,
  cache: CACHE,
  demo: DEMO,
  model: MODEL,
  bench: BENCH,
  view: VIEW,
  pretrain: PRETRAIN,
};

/** The `deno task ...` command lines of the README's shell blocks, comments dropped. */
function readmeCommands(): string[][] {
  const out: string[][] = [];
  for (const block of ALL.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const text = block[1].replace(/\\\n\s*/g, " ");
    for (const line of text.split("\n")) {
      const code = line.replace(/\s#.*$/, "").trim();
      const m = code.match(/^(?:npx -y deno@[\d.]+|deno) task (.*)$/);
      if (m) out.push(m[1].split(/\s+/));
    }
  }
  return out;
}

Deno.test("README commands parse with their task's options and never write to --out cache", () => {
  const commands = readmeCommands();
  assert(commands.length > 15, `${commands.length} commands`);
  for (const [task, ...args] of commands) {
    if (task === "test") continue;
    const spec = SPECS[task];
    assert(spec, `README runs an unknown task ${task}`);
    // `pretrain --cache ...` is `pretrain train --cache ...`.
    const implicit = task === "pretrain" && !Object.hasOwn(PRETRAIN.subcommands, args[0]);
    const r = parseCommand(spec, implicit ? ["train", ...args] : args, { cwd: ROOT });
    assert(r.help === undefined || args.includes("--help"), args.join(" "));
    const out = args[args.indexOf("--out") + 1];
    if (args.includes("--out")) assert(out !== "cache" && out !== "cache/", args.join(" "));
  }
  assert(!/open_group\("cache"|FileSystemStore\("cache"\)|open_zarr\("cache"/.test(ALL));
  assert(!/group="btcv\/img0001"/.test(ALL), "xarray opens groups, not arrays");
});

Deno.test({
  name: "the README's first commands run as written, from a folder beside ../shared",
  ignore: !HAVE_SHARED,
  async fn() {
    // A folder whose ../shared is the shared data, as the repository root's is.
    await using dir = await tempDir();
    const cwd = join(dir.path, "repo");
    await Deno.mkdir(cwd);
    await Deno.symlink(SHARED.replace(/\/$/, ""), join(dir.path, "shared"));
    const first = README.match(/```sh\n(deno task prep \.\.\/shared[\s\S]*?)```/);
    assert(first, "the README's first-run block");
    const lines = first[1].split("\n").map((l) => l.replace(/\s#.*$/, "").trim()).filter(Boolean);
    assertEquals(lines.length, 3, first[1]);
    for (const line of lines) {
      const r = await denoTask(line.replace(/^deno task /, "").split(/\s+/), cwd);
      assertEquals(r.code, 0, `${line}\n${r.stdout}\n${r.stderr}`);
    }
    // Every attribute a case carries is in the README's list.
    const a = await readCaseAttributes(
      new FileSystemStore(join(cwd, "ct.zarr")),
      "/ct/example_ct",
    );
    const list = ALL.match(/Attributes of each\s+case:([\s\S]*?)\n\n/)![1];
    for (const key of Object.keys(a)) {
      assert(list.includes(`\`${key}\``), `cache/README.md lacks ${key}`);
    }
  },
});
