// Checks on what a header declares (sizes within what the machine can hold, a usable
// affine), so that a lying header fails up front with a message; and words for errors.
import { invert4 } from "../transforms/_affine.ts";
import type { Mat4 } from "../volume.ts";
import { BadInputError } from "../../cache/errors.ts";

/**
 * The most bytes a decoded image may need. `undefined`: three quarters of the machine's
 * memory (or 16 GiB where the runtime cannot tell). Mutable, so tests can lower it.
 */
export const READ_LIMITS: { maxBytes?: number } = {};

/** The byte budget of one decoded image (see {@linkcode READ_LIMITS}). */
export function maxImageBytes(): number {
  if (READ_LIMITS.maxBytes !== undefined) return READ_LIMITS.maxBytes;
  try {
    return Math.floor(Deno.systemMemoryInfo().total * 0.75);
  } catch {
    return 16 * 2 ** 30;
  }
}

/** `1.5 GB`-style size for messages. */
export function formatSize(bytes: number): string {
  const units = ["bytes", "KB", "MB", "GB", "TB", "PB"];
  let v = bytes, u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${v} bytes` : `${v.toPrecision(3)} ${units[u]}`;
}

/**
 * Throws a `BadInputError` when an image of `shape` with `bytesPerVoxel` stored bytes could
 * not be held: the stored voxels plus a float32 working copy must fit in
 * {@linkcode maxImageBytes}. `what` names the header (`NIfTI header`, …).
 */
export function checkDeclaredSize(
  what: string,
  shape: readonly number[],
  bytesPerVoxel: number,
): void {
  const voxels = shape.reduce((a, b) => a * b, 1);
  const need = voxels * (bytesPerVoxel + 4);
  const limit = maxImageBytes();
  if (!Number.isSafeInteger(voxels) || need > limit) {
    throw new BadInputError(
      `${what} declares ${shape.join("x")} voxels, which need about ${formatSize(need)} ` +
        `to read, more than the ${formatSize(limit)} this machine can give one image`,
    );
  }
}

/** Words for anything a library throws (dicom-parser throws strings, Emscripten numbers). */
export function describeError(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  if (typeof e === "string" && e) {
    return /past end of buffer|buffer overrun/i.test(e) && !/cut short/.test(e)
      ? `${e} (the file ends inside an element: cut short?)`
      : e;
  }
  const inner = (e as { exception?: unknown } | undefined)?.exception;
  if (inner !== undefined && inner !== e) return describeError(inner);
  if (typeof e === "number") return `the decoder aborted (code ${e})`;
  return `an error without a message (${String(e)})`;
}

/**
 * Throws a `BadInputError` unless `affine` (voxel to world) is finite, has a non-zero
 * column per axis and is invertible. `what` names its source in the message.
 */
export function checkAffine(affine: Mat4, what: string): void {
  if (affine.flat().some((v) => !Number.isFinite(v))) {
    throw new BadInputError(`${what}: the voxel-to-world affine holds non-finite values`);
  }
  for (let c = 0; c < 3; c++) {
    if (Math.hypot(affine[0][c], affine[1][c], affine[2][c]) === 0) {
      throw new BadInputError(`${what}: voxel spacing along axis ${c} is zero`);
    }
  }
  try {
    invert4(affine);
  } catch {
    throw new BadInputError(`${what}: the voxel-to-world affine is singular`);
  }
}
