// Reading source files safely: regular files only (a FIFO or a device such as /dev/zero
// would hang the run or fill its memory), never more bytes than the file had when stat'd.
import { BadInputError } from "../../cache/errors.ts";

/** Words for what a path is when it is not a regular file (`a FIFO`, `a directory`, …). */
export function describeFileKind(info: Deno.FileInfo): string {
  if (info.isDirectory) return "a directory";
  if (info.isFifo) return "a FIFO (named pipe)";
  if (info.isCharDevice) return "a character device";
  if (info.isBlockDevice) return "a block device";
  if (info.isSocket) return "a socket";
  if (info.isFile) return "a regular file";
  return "not a regular file";
}

/**
 * Stats `path` (following symbolic links) and throws a `TypeError` naming it unless it is
 * a regular file; a missing or unreadable path throws `Deno.errors.NotFound` with the
 * reason. Call it before opening: opening a FIFO blocks until someone writes to it.
 */
export async function statRegular(path: string): Promise<Deno.FileInfo> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    const reason = e instanceof Deno.errors.NotFound
      ? "no such file (or a broken symbolic link)"
      : (e as Error).message;
    throw new Deno.errors.NotFound(`Cannot read ${path}: ${reason}`);
  }
  if (!info.isFile) {
    throw new BadInputError(
      `Cannot read ${path}: it is ${describeFileKind(info)}; only regular files are read`,
    );
  }
  return info;
}

/**
 * Reads a regular file whole (see {@linkcode statRegular}), at most the size it had when
 * stat'd, throwing a `RangeError` when that exceeds `maxBytes`.
 */
export async function readRegularFile(
  path: string,
  maxBytes = Infinity,
): Promise<{ bytes: Uint8Array; info: Deno.FileInfo }> {
  const info = await statRegular(path);
  if (info.size > maxBytes) {
    throw new BadInputError(
      `Cannot read ${path}: it holds ${info.size} bytes, more than the ${maxBytes} allowed`,
    );
  }
  return { bytes: await readHead(path, info.size, false), info };
}

/**
 * The first `bytes` bytes of a regular file (fewer when it is shorter). Stats first
 * unless `check` is false (the caller did).
 */
export async function readHead(path: string, bytes: number, check = true): Promise<Uint8Array> {
  if (check) await statRegular(path);
  const file = await Deno.open(path);
  try {
    const buf = new Uint8Array(bytes);
    let n = 0;
    while (n < bytes) {
      const r = await file.read(buf.subarray(n));
      if (r === null) break;
      n += r;
    }
    return n === bytes ? buf : buf.subarray(0, n);
  } finally {
    file.close();
  }
}
