// Small helpers shared by tests: temp folders, assertions and axis shuffles.
import type { Mat4, Shape3, Volume, VoxelArray } from "../prep/volume.ts";
import { matmul4 } from "../prep/transforms/_affine.ts";

/** Throws when `cond` is false. */
export function assert(cond: unknown, message = "Assertion failed"): asserts cond {
  if (!cond) throw new Error(message);
}

/** Deep equality through JSON, with a readable message. */
export function assertEquals(actual: unknown, expected: unknown, message = ""): void {
  const a = JSON.stringify(actual), e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${message}\n  actual:   ${a}\n  expected: ${e}`);
}

/** Asserts |a - b| <= tol element-wise (numbers or nested arrays). */
export function assertClose(actual: unknown, expected: unknown, tol: number, message = ""): void {
  const fa = [actual].flat(3) as number[], fe = [expected].flat(3) as number[];
  assert(fa.length === fe.length, `${message} length ${fa.length} vs ${fe.length}`);
  fa.forEach((v, i) => {
    if (!(Math.abs(v - fe[i]) <= tol)) {
      throw new Error(`${message} element ${i}: ${v} vs ${fe[i]} (tolerance ${tol})`);
    }
  });
}

/** Runs `fn` and returns the error it throws (fails when it does not throw). */
export async function assertRejects(fn: () => unknown, pattern?: RegExp): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    const err = e as Error;
    if (pattern && !pattern.test(err.message)) {
      throw new Error(`Error "${err.message}" does not match ${pattern}`);
    }
    return err;
  }
  throw new Error("Expected an error");
}

/** A fresh temporary folder, removed by the returned dispose function. */
export async function tempDir(): Promise<{ path: string; [Symbol.asyncDispose](): Promise<void> }> {
  const path = await Deno.makeTempDir({ prefix: "voco-test-" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}),
  };
}

/**
 * Stores the same image with other array axes: output axis `a` is input axis `perm[a]`,
 * reversed when `flip[a]`. The affine keeps every voxel at its world position.
 */
export function permuteAxes(
  v: Volume<VoxelArray>,
  perm: [number, number, number],
  flip: [boolean, boolean, boolean],
): Volume<Float32Array> {
  const shape = perm.map((p) => v.shape[p]) as Shape3;
  const inStride = [v.shape[1] * v.shape[2], v.shape[2], 1];
  const out = new Float32Array(v.data.length);
  const T: Mat4 = [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]];
  perm.forEach((p, a) => {
    T[p][a] = flip[a] ? -1 : 1;
    T[p][3] = flip[a] ? shape[a] - 1 : 0;
  });
  let o = 0;
  for (let i = 0; i < shape[0]; i++) {
    for (let j = 0; j < shape[1]; j++) {
      for (let k = 0; k < shape[2]; k++, o++) {
        const idx = [i, j, k].map((x, a) => flip[a] ? shape[a] - 1 - x : x);
        let src = 0;
        perm.forEach((p, a) => src += idx[a] * inStride[p]);
        out[o] = v.data[src];
      }
    }
  }
  return { data: out, shape, affine: matmul4(v.affine, T) };
}

/** A volume read from NIfTI (C order over `[k, j, i]`) in the file's `[i, j, k]` order. */
export function fileOrder(v: Volume<VoxelArray>): Volume<Float32Array> {
  return permuteAxes(v, [2, 1, 0], [false, false, false]);
}

/** Runs a task's `main(args)` with console output captured: its exit code and text. */
export async function runTask(
  main: (args: string[]) => Promise<number>,
  args: string[],
): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const log = console.log, err = console.error;
  console.log = (...a: unknown[]) => lines.push(a.join(" "));
  console.error = (...a: unknown[]) => lines.push(a.join(" "));
  try {
    const code = await main(args);
    return { code, text: lines.join("\n") };
  } finally {
    console.log = log;
    console.error = err;
  }
}
