// One call that registers the cache's native codecs with zarrita.
import { registerNativeZstd } from "./zstd_codec.ts";
import { registerNativeBlosc } from "./blosc_codec.ts";

/** Registers the native `zstd` and `blosc` codecs with zarrita (idempotent). */
export function registerCodecs(): void {
  registerNativeZstd();
  registerNativeBlosc();
}
