// One call that registers the cache's native codecs, and the checking crc32c, with zarrita.
import { registerNativeZstd } from "./zstd.ts";
import { registerNativeBlosc } from "./blosc.ts";
import { registerCrc32c } from "./crc32c.ts";

/**
 * Registers the native `zstd` and `blosc` codecs and the `crc32c` codec that checks the
 * checksum (zarrita's only strips it) with zarrita (idempotent).
 */
export function registerCodecs(): void {
  registerNativeZstd();
  registerNativeBlosc();
  registerCrc32c();
}
