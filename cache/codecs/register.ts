// One call that registers the cache's native codecs, and the checking crc32c, with zarrita.
import { registerNativeZstd } from "./zstd.ts";
import { registerNativeBlosc } from "./blosc.ts";
import { registerCrc32c } from "./crc32c.ts";
import { registerLorenzo } from "./lorenzo.ts";

/**
 * Registers the native `zstd` and `blosc` codecs, the `crc32c` codec that checks the
 * checksum (zarrita's only strips it) and the `voco.lorenzo` prediction with zarrita
 * (idempotent).
 */
export function registerCodecs(): void {
  registerNativeZstd();
  registerNativeBlosc();
  registerCrc32c();
  registerLorenzo();
}
