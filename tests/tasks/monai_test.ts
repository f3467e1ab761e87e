// The README's whole path as a newcomer runs it: its prep, pretrain and export commands as
// written (from a folder beside ../shared), then its Python lines, which load the exports
// into MONAI's SwinUNETR. Python needs torch and MONAI (VOCO_PYTHON names the interpreter,
// default python3); the safetensors lines also need the safetensors package. Skipped with a
// message where they are missing.
import { join } from "node:path";
import { HAVE_SHARED, SHARED } from "../_shared.ts";
import { assert, assertEquals, tempDir } from "../_helpers.ts";
import { denoTask, ROOT } from "./_run.ts";

const README = Deno.readTextFileSync(join(ROOT, "README.md"));
const PYTHON = Deno.env.get("VOCO_PYTHON") ?? "python3";

/** Runs Python code in `cwd`; `undefined` when the interpreter is missing. */
async function python(code: string, cwd: string) {
  try {
    const out = await new Deno.Command(PYTHON, {
      args: ["-c", code],
      cwd,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { ok: out.success, text: dec.decode(out.stdout) + dec.decode(out.stderr) };
  } catch {
    return undefined;
  }
}

Deno.test({
  name:
    "the README's path prep -> pretrain -> export runs as written, and its Python loads the exports into MONAI",
  ignore: !HAVE_SHARED,
  async fn() {
    await using dir = await tempDir();
    const cwd = join(dir.path, "repo");
    await Deno.mkdir(cwd);
    await Deno.symlink(SHARED.replace(/\/$/, ""), join(dir.path, "shared"));
    const section = README.slice(README.indexOf("## The whole path"), README.indexOf("## Tasks"));
    const commands = [...section.matchAll(/```sh\n([\s\S]*?)```/g)]
      .flatMap((m) => m[1].replace(/\\\n\s*/g, " ").split("\n"))
      .map((l) => l.replace(/\s#.*$/, "").trim())
      .filter((l) => /^deno task (prep|pretrain)/.test(l));
    assertEquals(commands.length, 4, commands.join("\n"));
    for (const line of commands) {
      const r = await denoTask(line.replace(/^deno task /, "").split(/\s+/), cwd);
      assertEquals(r.code, 0, `${line}\n${r.stdout}\n${r.stderr}`);
    }
    const blocks = [...section.matchAll(/```python\n([\s\S]*?)```/g)].map((m) => m[1]);
    assertEquals(blocks.length, 2);
    const probe = await python("import torch, monai", cwd);
    if (!probe?.ok) {
      console.warn(
        `Skipping the Python lines: ${PYTHON} with torch and MONAI is not here ` +
          "(VOCO_PYTHON names another interpreter).",
      );
      return;
    }
    for (const code of blocks) {
      if (code.includes("safetensors") && !(await python("import safetensors", cwd))?.ok) {
        console.warn("Skipping the safetensors lines: the safetensors package is not installed.");
        continue;
      }
      const r = await python(code, cwd);
      assert(r?.ok, `${code}\n${r?.text}`);
    }
  },
});
