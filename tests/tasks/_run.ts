// Helpers of the task tests: running `deno task ...` as a user would, and small inputs.
import { join } from "node:path";
import { makePhantom } from "../../prep/synthetic/phantom.ts";
import { writeNifti } from "../../prep/formats/write_nifti.ts";

/** The repository root. */
export const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/** What a spawned command gave: its exit code and output. */
export interface Ran {
  /** Exit code. */
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

/**
 * Runs `deno task <args>` with the repository's `deno.json` from `cwd` (default: the
 * repository root), as a user would type it.
 */
export async function denoTask(args: string[], cwd = ROOT): Promise<Ran> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", "--config", join(ROOT, "deno.json"), ...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: userEnv(),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * The environment of a user's shell: this one without `INIT_CWD`, which `deno task` sets
 * only when it is unset (under `deno task test` it is the repository root already).
 */
export function userEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  delete env.INIT_CWD;
  return { ...env, NO_COLOR: "1" };
}

/** Writes `n` small phantom CTs `case<i>.nii.gz` into `dir`. */
export async function writePhantoms(
  dir: string,
  n: number,
  shape: [number, number, number] = [40, 36, 20],
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const v = makePhantom({ shape, spacingMm: [3, 3, 4], seed: i + 1 });
    await Deno.writeFile(join(dir, `case${i}.nii.gz`), writeNifti(v));
  }
}
