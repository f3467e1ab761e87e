// A zarrita store over fetch (plain HTTP or SigV4-signed S3): one request per get, suffix
// ranges for shard indexes, sizes by HEAD, errors that name the URL and the reason,
// request counts.
import type * as zarr from "zarrita";
import { AwsClient } from "aws4fetch";
import { VocoError } from "../errors.ts";

/** Requests and bytes a store has fetched. */
export interface FetchStats {
  /** HTTP requests sent (retries included). */
  requests: number;
  /** Body bytes received. */
  bytes: number;
}

/** S3 signing: credentials and region (no credentials: anonymous requests). */
export interface S3Signing {
  /** Access key id. */
  accessKeyId: string;
  /** Secret access key. */
  secretAccessKey: string;
  /** Session token of temporary credentials. */
  sessionToken?: string;
  /** Region the endpoint signs for. */
  region: string;
}

/** Options of {@linkcode HttpStore}. */
export interface HttpStoreOptions {
  /** Sign requests for S3 with these credentials (SigV4); unsigned when absent. */
  s3?: S3Signing;
  /** Headers added to every request. @default {{}} */
  headers?: Record<string, string>;
  /** Time for one request, in ms. @default {30000} */
  timeoutMs?: number;
  /** Retries of a request that failed on the network or with 5xx. @default {2} */
  retries?: number;
}

/** A fetch failure carrying the URL and HTTP status (0 for a network error). */
export class FetchError extends VocoError {
  /** The URL requested. */
  url: string;
  /** HTTP status, or 0 when no response came. */
  status: number;
  /** Makes an error for `url`. */
  constructor(message: string, url: string, status: number, options?: ErrorOptions) {
    super("unavailable", message, { cause: options?.cause, path: url });
    this.name = "FetchError";
    this.url = url;
    this.status = status;
  }
}

function reason(status: number, statusText: string): string {
  const why = status === 403
    ? " (access denied: check the credentials, or the key is missing and listing is not allowed)"
    : status === 401
    ? " (authentication required)"
    : "";
  return `${status}${statusText ? ` ${statusText}` : ""}${why}`;
}

/**
 * A readable zarrita store whose keys are URLs below `base` (`get`, `getRange` with byte
 * ranges and suffix ranges). A 404 is a missing key (`undefined`); anything else that is
 * not 200/206 throws a {@linkcode FetchError} naming the URL and status.
 */
export class HttpStore implements zarr.AsyncReadable {
  /** The base URL, ending in `/`. */
  readonly base: string;
  readonly #aws?: AwsClient;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #stats: FetchStats = { requests: 0, bytes: 0 };

  /** A store reading below `base`. */
  constructor(base: string, options: HttpStoreOptions = {}) {
    this.base = base.endsWith("/") ? base : `${base}/`;
    this.#headers = options.headers ?? {};
    this.#timeoutMs = options.timeoutMs ?? 30000;
    this.#retries = options.retries ?? 2;
    if (options.s3) {
      this.#aws = new AwsClient({ ...options.s3, service: "s3", retries: 0 });
    }
  }

  /** Requests and bytes so far (a copy). */
  stats(): FetchStats {
    return { ...this.#stats };
  }

  /** The URL of a store key (`/a/zarr.json`), each path segment percent-encoded. */
  url(key: string): string {
    return this.base + key.replace(/^\//, "").split("/").map(encodeURIComponent).join("/");
  }

  /**
   * Sends one request with the store's headers, signing, time limit and retries; the
   * response of any status is returned (the caller judges it).
   */
  async fetch(
    url: string,
    headers: Record<string, string> = {},
    method = "GET",
  ): Promise<Response> {
    let lastError: unknown;
    for (let attempt = 0; attempt <= this.#retries; attempt++) {
      if (attempt) await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
      this.#stats.requests++;
      try {
        const init = {
          method,
          headers: { ...this.#headers, ...headers },
          signal: AbortSignal.timeout(this.#timeoutMs),
        };
        const res = this.#aws ? await this.#aws.fetch(url, init) : await fetch(url, init);
        if (res.status >= 500 && attempt < this.#retries) {
          await res.body?.cancel();
          lastError = new FetchError(
            `${method} ${url}: ${reason(res.status, res.statusText)}`,
            url,
            res.status,
          );
          continue;
        }
        return res;
      } catch (e) {
        lastError = e;
      }
    }
    if (lastError instanceof FetchError) throw lastError;
    const msg = lastError instanceof Error ? lastError.message : String(lastError);
    throw new FetchError(`${method} ${url}: network error (${msg})`, url, 0, { cause: lastError });
  }

  /** The body of a GET with `headers`, its status and `Content-Range`; 404 gives none. */
  async #bytes(
    url: string,
    headers: Record<string, string>,
  ): Promise<{ bytes?: Uint8Array; status: number; contentRange: string | null }> {
    const res = await this.fetch(url, headers);
    const contentRange = res.headers.get("content-range");
    if (res.status === 404 || res.status === 416) {
      await res.body?.cancel();
      return { status: res.status, contentRange };
    }
    if (res.status !== 200 && res.status !== 206) {
      await res.body?.cancel();
      throw new FetchError(`GET ${url}: ${reason(res.status, res.statusText)}`, url, res.status);
    }
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (e) {
      throw new FetchError(`GET ${url}: body cut off (${(e as Error).message})`, url, 0, {
        cause: e,
      });
    }
    this.#stats.bytes += bytes.length;
    return { bytes, status: res.status, contentRange };
  }

  /** The whole value of `key`, or `undefined` when the server says 404. */
  async get(key: zarr.AbsolutePath): Promise<Uint8Array | undefined> {
    const url = this.url(key);
    const r = await this.#bytes(url, {});
    if (r.status === 416) throw new FetchError(`GET ${url}: 416`, url, 416);
    return r.bytes;
  }

  /**
   * The stored size in bytes of `key`, or `undefined` when the server says 404: a HEAD
   * request (signed like any other for S3) and its `Content-Length`. A server that
   * answers HEAD without a length, or refuses HEAD (405, 501), is asked for the first byte
   * instead, and the size taken from its `Content-Range`.
   */
  async size(key: zarr.AbsolutePath): Promise<number | undefined> {
    const url = this.url(key);
    const head = await this.fetch(url, {}, "HEAD");
    await head.body?.cancel();
    if (head.status === 404) return undefined;
    const length = head.headers.get("content-length");
    if (head.status === 200 && length !== null && /^\d+$/.test(length)) return Number(length);
    if (head.status !== 200 && head.status !== 405 && head.status !== 501) {
      throw new FetchError(
        `HEAD ${url}: ${reason(head.status, head.statusText)}`,
        url,
        head.status,
      );
    }
    const res = await this.fetch(url, { range: "bytes=0-0" });
    await res.body?.cancel();
    if (res.status === 404) return undefined;
    const total = /\/(\d+)\s*$/.exec(res.headers.get("content-range") ?? "")?.[1];
    if (res.status === 206 && total !== undefined) return Number(total);
    if (res.status === 416) return 0; // no first byte: an empty file
    const whole = res.headers.get("content-length");
    if (res.status === 200 && whole !== null && /^\d+$/.test(whole)) return Number(whole);
    throw new FetchError(
      `GET ${url} (bytes=0-0): ${reason(res.status, res.statusText)}, and no size in the answer`,
      url,
      res.status,
    );
  }

  /**
   * A byte range of `key` (or its last `suffixLength` bytes). The answer's
   * `Content-Range` is checked: a server that ignores ranges (200) is cut to the part
   * asked for, and one that answers a suffix range wrongly (s3rver reads `bytes=-N` as
   * `0-N`) or not at all (416) is asked again for the explicit range.
   */
  async getRange(
    key: zarr.AbsolutePath,
    range: zarr.RangeQuery,
  ): Promise<Uint8Array | undefined> {
    const url = this.url(key);
    const suffix = "suffixLength" in range;
    const want = suffix ? range.suffixLength : range.length;
    const spec = suffix
      ? `bytes=-${range.suffixLength}`
      : `bytes=${range.offset}-${range.offset + range.length - 1}`;
    const r = await this.#bytes(url, { range: spec });
    if (r.status === 404) return undefined;
    const m = /bytes\s+(\d+)-(\d+)\/(\d+|\*)/.exec(r.contentRange ?? "");
    const total = m && m[3] !== "*" ? Number(m[3]) : /\/(\d+)$/.exec(r.contentRange ?? "")?.[1];
    const size = total === undefined ? undefined : Number(total);
    if (r.status === 200 && r.bytes) {
      const b = r.bytes;
      if (b.length < want) throw this.#short(url, spec, b.length, want);
      return suffix ? b.subarray(b.length - want) : b.subarray(range.offset, range.offset + want);
    }
    const first = m ? Number(m[1]) : undefined;
    const expected = suffix ? size !== undefined ? size - want : undefined : range.offset;
    if (r.status === 206 && r.bytes && r.bytes.length === want && first === expected) {
      return r.bytes;
    }
    if (suffix && size !== undefined && size >= want) {
      const again = await this.#bytes(url, { range: `bytes=${size - want}-${size - 1}` });
      if (again.bytes?.length === want) return again.bytes;
      throw this.#short(url, spec, again.bytes?.length ?? 0, want);
    }
    if (r.status === 416) {
      throw new FetchError(
        `GET ${url} (${spec}): 416 Range Not Satisfiable (the file has ${size ?? "fewer"} bytes)`,
        url,
        416,
      );
    }
    throw this.#short(url, spec, r.bytes?.length ?? 0, want);
  }

  #short(url: string, spec: string, got: number, want: number): FetchError {
    return new FetchError(`GET ${url} (${spec}): short read, ${got} of ${want} bytes`, url, 206);
  }
}
