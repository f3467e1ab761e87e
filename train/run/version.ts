// The toolkit version recorded in runs and exports, read from `deno.json` (one place).
import meta from "../../deno.json" with { type: "json" };

/** The toolkit version recorded in runs (`deno.json`'s `version`). */
export const TOOLKIT_VERSION: string = meta.version;
