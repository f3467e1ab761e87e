// Where the `deno task cache` subcommands find a cache: a folder, or (for those that only
// read) an http(s):// or s3:// URL, with the flags that say how to reach an S3 endpoint.
import { type CacheReaderOptions, isCacheUrl } from "../cache/read/cache_reader.ts";
import { userPath } from "../cli/args.ts";
import { UsageError } from "../cli/run.ts";

/** The positional `<cache>` of the subcommands that read: a folder, or a URL. */
export const CACHE_LOCATION_ARG = {
  name: "cache",
  help:
    "the path of the cache folder, or its http(s):// (cache serve) or s3://bucket/prefix URL (deno task cache inspect ct.zarr)",
  type: "string",
  min: 1,
  max: 1,
} as const;

/** Flags of the subcommands that read a cache: where an s3:// cache is served. */
export const REMOTE_FLAGS = {
  endpoint: {
    type: "string",
    arg: "URL",
    help: "S3-compatible endpoint of s3:// URLs (default: AWS_ENDPOINT_URL, else AWS)",
  },
  anonymous: {
    type: "boolean",
    help: "unsigned S3 requests (a public bucket), even with AWS credentials set",
  },
} as const;

/** A folder resolved against the user's folder; a URL as it is. */
export function cacheLocation(raw: string): string {
  return isCacheUrl(raw) ? raw : userPath(raw);
}

/** True for a location read over the network (`http(s)://`, `s3://`), not a folder. */
export function isRemoteLocation(location: string): boolean {
  return isCacheUrl(location) && !/^file:\/\//i.test(location);
}

/** The reader options of the {@linkcode REMOTE_FLAGS} values. */
export function readerOptions(v: { endpoint?: string; anonymous?: boolean }): CacheReaderOptions {
  return { endpoint: v.endpoint, anonymous: v.anonymous || undefined };
}

/** A folder for a subcommand that writes into the cache; a URL is refused (read-only). */
export function folderOnly(raw: string, command: string): string {
  if (isRemoteLocation(raw)) {
    throw new UsageError(
      `${raw}: cache ${command} changes the cache folder itself; a cache at a URL is ` +
        `read-only from here: run it on the machine that holds the folder`,
      { command: `cache ${command}` },
    );
  }
  return userPath(raw);
}
