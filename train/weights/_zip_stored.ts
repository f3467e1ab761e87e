// The central directory of a zip archive and where each stored entry's bytes lie, for
// `torch.save` files. Written by hand rather than with an unzip package: torch.save stores
// every entry uncompressed and 64-byte aligned, so the tensors can be read in place (a
// view of the file, no copy of a multi-GB checkpoint), which needs the entry offsets that
// unzip libraries keep to themselves. Zip64 (files over 4 GiB) is handled.
import { BadInputError } from "../../cache/errors.ts";

/** One entry of the central directory. */
export interface ZipEntry {
  /** Full name inside the archive (`archive/data/0`). */
  name: string;
  /** Compression method: 0 stored, 8 deflate (the only one torch.save writes is 0). */
  method: number;
  /** Offset of the entry's bytes in the file (after its local header). */
  offset: number;
  /** Stored size in bytes. */
  compressedSize: number;
  /** Uncompressed size in bytes. */
  size: number;
}

const EOCD = 0x06054b50, ZIP64_LOCATOR = 0x07064b50, ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50, LOCAL = 0x04034b50;

/** Lists the entries of a zip archive by name. Throws a `BadInputError` for a broken archive. */
export function readZipDirectory(bytes: Uint8Array): Map<string, ZipEntry> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const u16 = (at: number) => view.getUint16(at, true);
  const u32 = (at: number) => view.getUint32(at, true);
  const u64 = (at: number) => Number(view.getBigUint64(at, true));
  let eocd = -1;
  for (let at = bytes.length - 22; at >= Math.max(0, bytes.length - 22 - 65535); at--) {
    if (u32(at) === EOCD) {
      eocd = at;
      break;
    }
  }
  if (eocd < 0) throw new BadInputError("Not a zip archive: no end of central directory");
  let count = u16(eocd + 10);
  let dirOffset = u32(eocd + 16);
  if (eocd >= 20 && u32(eocd - 20) === ZIP64_LOCATOR) {
    const record = u64(eocd - 20 + 8);
    if (record + 56 > bytes.length || u32(record) !== ZIP64_EOCD) {
      throw new BadInputError("Broken zip archive: bad zip64 end of central directory");
    }
    count = u64(record + 32);
    dirOffset = u64(record + 48);
  }
  const entries = new Map<string, ZipEntry>();
  const decoder = new TextDecoder();
  let at = dirOffset;
  for (let i = 0; i < count; i++) {
    if (at + 46 > bytes.length || u32(at) !== CENTRAL) {
      throw new BadInputError(`Broken zip archive: central directory entry ${i} missing`);
    }
    const nameLength = u16(at + 28), extraLength = u16(at + 30), commentLength = u16(at + 32);
    const name = decoder.decode(bytes.subarray(at + 46, at + 46 + nameLength));
    let compressedSize = u32(at + 20), size = u32(at + 24), local = u32(at + 42);
    // Zip64 extra field: the 64-bit values of the fields set to 0xFFFFFFFF, in this order.
    for (let e = at + 46 + nameLength; e + 4 <= at + 46 + nameLength + extraLength;) {
      const id = u16(e), length = u16(e + 2);
      if (id === 0x0001) {
        let f = e + 4;
        if (size === 0xffffffff) size = u64(f), f += 8;
        if (compressedSize === 0xffffffff) compressedSize = u64(f), f += 8;
        if (local === 0xffffffff) local = u64(f);
      }
      e += 4 + length;
    }
    if (local + 30 > bytes.length || u32(local) !== LOCAL) {
      throw new BadInputError(`Broken zip archive: no local header for ${name}`);
    }
    const offset = local + 30 + u16(local + 26) + u16(local + 28);
    if (offset + compressedSize > bytes.length) {
      throw new BadInputError(`Broken zip archive: ${name} runs past the end (truncated file?)`);
    }
    entries.set(name, { name, method: u16(at + 10), offset, compressedSize, size });
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}
