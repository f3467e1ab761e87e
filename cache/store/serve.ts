// `cache serve`: a read-only HTTP server for a cache folder (range requests, validators,
// CORS), safe against path traversal and bounded in concurrency.
import { join, sep } from "node:path";

/** Options of {@linkcode serveCache} and {@linkcode cacheHandler}. */
export interface ServeCacheOptions {
  /**
   * Address to listen on; only loopback unless told otherwise.
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /**
   * Port to listen on; `0` picks a free one (see {@linkcode CacheServer.port}).
   * @default {8000}
   */
  port?: number;
  /**
   * Most requests answered at once; further requests wait for a free slot (a slot is
   * held until the response body is sent).
   * @default {64}
   */
  maxConcurrent?: number;
  /**
   * Most requests waiting for a slot; beyond, requests get 503 with `Retry-After`.
   * @default {4096}
   */
  maxQueued?: number;
  /**
   * `Cache-Control` of every file response (a cache can change under `prep`: clients
   * revalidate with the ETag).
   * @default {"no-cache"}
   */
  cacheControl?: string;
}

/** A running {@linkcode serveCache} server. */
export interface CacheServer {
  /** Base URL of the cache, ending in `/` (`http://127.0.0.1:8000/`). */
  url: string;
  /** The address listened on. */
  hostname: string;
  /** The port listened on (the one picked when `port` was 0). */
  port: number;
  /** Requests answered so far, by status. */
  counts(): Record<number, number>;
  /** Stops listening and waits for open requests to end. */
  shutdown(): Promise<void>;
  /** Settles when the server has stopped. */
  finished: Promise<void>;
}

const CORS: Record<string, string> = {
  "access-control-allow-origin": "*",
  "access-control-expose-headers":
    "Accept-Ranges, Content-Length, Content-Range, ETag, Last-Modified",
};

const READ_CHUNK = 256 * 1024;

/** Parses a single `Range: bytes=...` header against `size`: the range, "none", or "bad". */
function parseRange(header: string, size: number): [number, number] | "ignore" | "bad" {
  const m = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(header.trim());
  // Several ranges or another unit: serving the whole file is allowed (RFC 9110 14.2).
  if (!m) return /^bytes=/.test(header.trim()) && header.includes(",") ? "ignore" : "bad";
  const [, a, b] = m;
  if (a === "" && b === "") return "bad";
  let start: number, end: number;
  if (a === "") {
    const n = Number(b);
    if (n === 0) return "bad";
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(a);
    end = b === "" ? size - 1 : Math.min(Number(b), size - 1);
    if (b !== "" && Number(b) < start) return "bad";
  }
  if (start >= size) return "bad";
  return [start, end];
}

/**
 * The path below `root` that a request path names, or `undefined` when it names nothing
 * that may be served: an empty or dot segment (also percent-encoded), an encoded slash or
 * backslash, a NUL, or a hidden name (`.staging`).
 */
function safeRelative(pathname: string): string[] | undefined {
  const raw = pathname.split("/").slice(1);
  const parts: string[] = [];
  for (const seg of raw) {
    let s: string;
    try {
      s = decodeURIComponent(seg);
    } catch {
      return undefined;
    }
    if (s === "" || s.startsWith(".") || /[/\\\0]/.test(s)) return undefined;
    parts.push(s);
  }
  return parts.length ? parts : undefined;
}

function plain(status: number, text: string, head = false, extra: Record<string, string> = {}) {
  return new Response(head ? null : `${text}\n`, {
    status,
    headers: { ...CORS, "content-type": "text/plain; charset=utf-8", ...extra },
  });
}

/**
 * The request handler of {@linkcode serveCache}, for use with any `Deno.serve`: GET and
 * HEAD of the files of the cache at `root` (single byte ranges, `ETag`/`Last-Modified`,
 * `If-None-Match`/`If-Modified-Since`/`If-Range`), CORS preflight, and 404 for anything
 * else: folders (no listing), hidden names, paths that leave the cache (dot segments,
 * encoded slashes, symbolic links pointing outside).
 */
export async function cacheHandler(
  root: string,
  options: ServeCacheOptions = {},
): Promise<(req: Request) => Promise<Response>> {
  const { maxConcurrent = 64, maxQueued = 4096, cacheControl = "no-cache" } = options;
  if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1) {
    throw new RangeError(`maxConcurrent must be a positive integer, got ${maxConcurrent}`);
  }
  const base = await Deno.realPath(root).catch(() => {
    throw new Deno.errors.NotFound(`Cache ${root} does not exist`);
  });
  if (!(await Deno.stat(base)).isDirectory) throw new TypeError(`${root} is not a folder`);
  const prefix = base.endsWith(sep) ? base : base + sep;
  let active = 0;
  const waiting: (() => void)[] = [];
  const release = () => {
    const next = waiting.shift();
    if (next) next();
    else active--;
  };
  const acquire = (): Promise<boolean> => {
    if (active < maxConcurrent) {
      active++;
      return Promise.resolve(true);
    }
    if (waiting.length >= maxQueued) return Promise.resolve(false);
    return new Promise((resolve) => waiting.push(() => resolve(true)));
  };

  return async (req: Request): Promise<Response> => {
    const head = req.method === "HEAD";
    if (req.method === "OPTIONS") {
      return new Response(null, {
        status: 204,
        headers: {
          ...CORS,
          "access-control-allow-methods": "GET, HEAD, OPTIONS",
          "access-control-allow-headers": "Range, If-None-Match, If-Modified-Since, If-Range",
          "access-control-max-age": "86400",
        },
      });
    }
    if (req.method !== "GET" && !head) {
      return plain(405, "Method not allowed: the cache is read-only", false, {
        allow: "GET, HEAD, OPTIONS",
      });
    }
    if (!(await acquire())) return plain(503, "Busy", head, { "retry-after": "1" });
    let handedOff = false;
    try {
      const parts = safeRelative(new URL(req.url).pathname);
      if (!parts) return plain(404, "Not found", head);
      let real: string;
      try {
        real = await Deno.realPath(join(base, ...parts));
      } catch {
        return plain(404, "Not found", head);
      }
      // A symbolic link may point anywhere: only what resolves inside the cache is served.
      if (!real.startsWith(prefix)) return plain(404, "Not found", head);
      let file: Deno.FsFile;
      try {
        file = await Deno.open(real, { read: true });
      } catch {
        return plain(404, "Not found", head);
      }
      let keepFile = false;
      try {
        const info = await file.stat();
        if (!info.isFile) return plain(404, "Not found", head);
        const size = info.size;
        const mtime = info.mtime?.getTime() ?? 0;
        const etag = `"${size.toString(16)}-${Math.floor(mtime).toString(16)}"`;
        const lastModified = new Date(mtime).toUTCString();
        const headers: Record<string, string> = {
          ...CORS,
          "accept-ranges": "bytes",
          "etag": etag,
          "last-modified": lastModified,
          "cache-control": cacheControl,
          "content-type": parts.at(-1) === "zarr.json"
            ? "application/json"
            : "application/octet-stream",
        };
        const inm = req.headers.get("if-none-match");
        const ims = req.headers.get("if-modified-since");
        const notModified = inm !== null
          ? inm.split(",").some((t) => {
            const v = t.trim();
            return v === "*" || v === etag || v === `W/${etag}`;
          })
          : ims !== null && !Number.isNaN(Date.parse(ims)) &&
            Math.floor(mtime / 1000) <= Math.floor(Date.parse(ims) / 1000);
        if (notModified) return new Response(null, { status: 304, headers });
        let start = 0, end = size - 1, status = 200;
        const range = req.headers.get("range");
        const ifRange = req.headers.get("if-range");
        const rangeApplies = range !== null &&
          (ifRange === null || ifRange.trim() === etag || ifRange.trim() === lastModified);
        if (rangeApplies) {
          const r = parseRange(range!, size);
          if (r === "bad") {
            return new Response(null, {
              status: 416,
              headers: { ...headers, "content-range": `bytes */${size}` },
            });
          }
          if (r !== "ignore") {
            [start, end] = r;
            status = 206;
            headers["content-range"] = `bytes ${start}-${end}/${size}`;
          }
        }
        const length = Math.max(0, end - start + 1);
        headers["content-length"] = String(length);
        if (head || length === 0) return new Response(null, { status, headers });
        await file.seek(start, Deno.SeekMode.Start);
        let left = length;
        let closed = false;
        const finish = () => {
          if (closed) return;
          closed = true;
          file.close();
          release();
        };
        const body = new ReadableStream<Uint8Array>({
          type: "bytes",
          async pull(controller) {
            try {
              const buf = new Uint8Array(Math.min(READ_CHUNK, left));
              let got = 0;
              while (got < buf.length) {
                const n = await file.read(buf.subarray(got));
                if (n === null) break;
                got += n;
              }
              if (got === 0) throw new Error(`File ended early: ${real}`);
              left -= got;
              controller.enqueue(got === buf.length ? buf : buf.subarray(0, got));
              if (left <= 0) {
                finish();
                controller.close();
              }
            } catch (e) {
              finish();
              controller.error(e);
            }
          },
          cancel() {
            finish();
          },
        });
        keepFile = true;
        handedOff = true;
        return new Response(body, { status, headers });
      } finally {
        if (!keepFile) file.close();
      }
    } finally {
      if (!handedOff) release();
    }
  };
}

/**
 * Serves the cache at `root` read-only over HTTP (see {@linkcode cacheHandler}), on
 * 127.0.0.1 unless `hostname` says otherwise.
 *
 * @example Serve a cache on a free loopback port
 * ```ts ignore
 * const server = await serveCache("ct.zarr", { port: 0 });
 * console.log(server.url); // http://127.0.0.1:40123/
 * await server.shutdown();
 * ```
 */
export async function serveCache(
  root: string,
  options: ServeCacheOptions = {},
): Promise<CacheServer> {
  const { hostname = "127.0.0.1", port = 8000 } = options;
  const handler = await cacheHandler(root, options);
  const counts: Record<number, number> = {};
  let listening!: (addr: Deno.NetAddr) => void;
  const ready = new Promise<Deno.NetAddr>((r) => listening = r);
  const server = Deno.serve({
    hostname,
    port,
    onListen: (addr) => listening(addr as Deno.NetAddr),
    onError: (e) => plain(500, `Internal error: ${(e as Error).message}`),
  }, async (req) => {
    const res = await handler(req);
    counts[res.status] = (counts[res.status] ?? 0) + 1;
    return res;
  });
  const addr = await ready;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  return {
    url: `http://${host}:${addr.port}/`,
    hostname: addr.hostname,
    port: addr.port,
    counts: () => ({ ...counts }),
    shutdown: () => server.shutdown(),
    finished: server.finished,
  };
}
