// The PyTorch/MONAI references the benchmarks measure side by side (`--torch`): finding a
// Python that imports torch, nibabel and MONAI, running one of `bench/reference/*.py` on the
// same inputs in the same run, and reading the JSON it prints. Where no such Python exists
// the benchmarks print "not measured", never a number from another day.

/** A Python that runs the references, or why there is none. */
export type Reference = { python: string } | { missing: string };

const SCRIPTS = new URL("./reference/", import.meta.url).pathname;

/** How to make the references available, for the "not measured" line. */
export const REFERENCE_HINT = "install Debian's python3-torch and python3-nibabel and put " +
  "MONAI 1.3.2's source on PYTHONPATH, or name a Python with VOCO_PYTHON";

/**
 * The first of `VOCO_PYTHON`, `python3` and `/usr/bin/python3` that imports torch,
 * nibabel and MONAI (with this process's `PYTHONPATH`).
 */
export async function findReference(): Promise<Reference> {
  const candidates = [Deno.env.get("VOCO_PYTHON"), "python3", "/usr/bin/python3"]
    .filter((c): c is string => Boolean(c));
  const why: string[] = [];
  for (const python of new Set(candidates)) {
    try {
      const out = await new Deno.Command(python, {
        args: ["-c", "import torch, nibabel, monai; print(torch.__version__, monai.__version__)"],
        stdout: "piped",
        stderr: "piped",
      }).output();
      if (out.success) return { python };
      const last = new TextDecoder().decode(out.stderr).trim().split("\n").pop() ?? "";
      why.push(`${python}: ${last}`);
    } catch (e) {
      why.push(`${python}: ${(e as Error).message.split("\n")[0]}`);
    }
  }
  return { missing: why.join("; ") };
}

/** The line a benchmark prints for a reference it could not run. */
export function notMeasured(what: string, ref: Reference | undefined): string {
  if (!ref) return `  ${what}: not measured (add --torch to measure it in this run)`;
  return "missing" in ref
    ? `  ${what}: not measured (no Python with torch, nibabel and MONAI: ${ref.missing}; ` +
      `${REFERENCE_HINT})`
    : "";
}

/** Runs `bench/reference/<script>` with `args` and returns the JSON object it prints. */
export async function runReference<T>(
  ref: { python: string },
  script: string,
  args: string[],
): Promise<T> {
  const out = await new Deno.Command(ref.python, {
    args: ["-W", "ignore", `${SCRIPTS}${script}`, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-5).join("\n");
    throw new Error(`The reference ${script} failed (exit ${out.code}):\n${err}`);
  }
  return JSON.parse(text.split("\n").pop()!) as T;
}
