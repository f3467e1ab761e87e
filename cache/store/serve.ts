// `cache serve`: a read-only HTTP server for a cache folder (range requests, validators,
// CORS), safe against path traversal, serving regular files only, bounded in concurrency
// with a share per client, and cutting off clients that stall.
import { join, relative, sep } from "node:path";
import { ensureConsolidated } from "../write/consolidate.ts";
import { NotACacheError } from "../errors.ts";

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
   * Most file bodies streamed at once (a slot is held until the body is sent or the client
   * is cut off); further requests wait for a slot. Files of at most 256 KiB (metadata,
   * small chunks) are read whole and need none, so they are answered while every slot is
   * taken.
   * @default {64}
   */
  maxConcurrent?: number;
  /**
   * Most slots one client (one remote address) holds at once; its further requests wait
   * while other clients' are served.
   * @default {half of maxConcurrent, at least 1}
   */
  maxPerClient?: number;
  /**
   * Most requests waiting for a slot; beyond, requests get 503 with `Retry-After`.
   * @default {4096}
   */
  maxQueued?: number;
  /**
   * Milliseconds a request may wait for a slot before it gets 503 with `Retry-After`.
   * @default {30000}
   */
  queueTimeoutMs?: number;
  /**
   * Milliseconds a client may take no bytes of a body before it is cut off (its slot
   * freed): a client that asks and stops reading cannot hold a slot for ever.
   * @default {30000}
   */
  idleTimeoutMs?: number;
  /**
   * Milliseconds one body may take to send in all before the client is cut off.
   * @default {600000}
   */
  writeTimeoutMs?: number;
  /**
   * Make the cache's consolidated metadata hold what the cache holds before serving
   * (write it, or refresh it), since URL clients list the cache from it; where that
   * fails (a read-only folder), {@linkcode CacheServer.consolidated} says so.
   * @default {false}
   */
  consolidate?: boolean;
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
  /**
   * What serving did to the consolidated metadata, in a sentence, when asked to
   * (`consolidate`) and something was done or could not be; `undefined` otherwise.
   */
  consolidated?: string;
  /**
   * Stops listening and waits for open requests to end (a client whose socket is full and
   * that reads nothing keeps its connection until it closes it, even once cut off).
   */
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

/** Where a request comes from, as `Deno.serve` tells its handler. */
export interface RequestInfo {
  /** The client's address. */
  remoteAddr?: { hostname?: string };
}

/** Bodies up to this size are read whole and sent without holding a slot. */
const SMALL = 256 * 1024;

/**
 * Slots for streamed bodies: at most `max` at once, at most `perClient` per client; a
 * freed slot goes to the first waiting request whose client is under its share.
 */
function slots(max: number, perClient: number, maxQueued: number, queueMs: number) {
  let active = 0;
  const held = new Map<string, number>();
  const waiting: { client: string; go: () => void }[] = [];
  const take = (client: string) => {
    active++;
    held.set(client, (held.get(client) ?? 0) + 1);
  };
  const next = () => {
    while (active < max) {
      const i = waiting.findIndex((w) => (held.get(w.client) ?? 0) < perClient);
      if (i < 0) return;
      const [w] = waiting.splice(i, 1);
      take(w.client);
      w.go();
    }
  };
  return {
    /** A release function once a slot is taken, `undefined` when none comes in time. */
    acquire(client: string): Promise<(() => void) | undefined> {
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        active--;
        const n = (held.get(client) ?? 1) - 1;
        if (n) held.set(client, n);
        else held.delete(client);
        next();
      };
      if (active < max && (held.get(client) ?? 0) < perClient) {
        take(client);
        return Promise.resolve(release);
      }
      if (waiting.length >= maxQueued) return Promise.resolve(undefined);
      return new Promise((resolve) => {
        const w = {
          client,
          go: () => {
            clearTimeout(timer);
            resolve(release);
          },
        };
        const timer = setTimeout(() => {
          const i = waiting.indexOf(w);
          if (i >= 0) waiting.splice(i, 1);
          resolve(undefined);
        }, queueMs);
        waiting.push(w);
      });
    },
  };
}

/** Reads `length` bytes of `file` from its position (fewer when it ends first). */
async function readFully(file: Deno.FsFile, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const n = await file.read(buf.subarray(got));
    if (n === null) break;
    got += n;
  }
  return got === length ? buf : buf.subarray(0, got);
}

/**
 * The request handler of {@linkcode serveCache}, for use with any `Deno.serve`: GET and
 * HEAD of the regular files of the cache at `root` (single byte ranges,
 * `ETag`/`Last-Modified`, `If-None-Match`/`If-Modified-Since`/`If-Range`), CORS
 * preflight, and 404 for anything else: folders (no listing), FIFOs, devices and sockets
 * (checked before opening), anything hidden (`.staging`) or outside the cache however it
 * is reached (dot segments, encoded slashes, symbolic links). Bodies are streamed in
 * bounded slots shared fairly among clients (`info.remoteAddr`), and a client that stops
 * reading is cut off. Throws a `NotACacheError` for a `root` that is missing, not a folder
 * or without a root `zarr.json`.
 */
export async function cacheHandler(
  root: string,
  options: ServeCacheOptions = {},
): Promise<(req: Request, info?: RequestInfo) => Promise<Response>> {
  const {
    maxConcurrent = 64,
    maxQueued = 4096,
    cacheControl = "no-cache",
    queueTimeoutMs = 30_000,
    idleTimeoutMs = 30_000,
    writeTimeoutMs = 600_000,
  } = options;
  if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1) {
    throw new RangeError(`maxConcurrent must be a positive integer, got ${maxConcurrent}`);
  }
  const perClient = options.maxPerClient ?? Math.max(1, Math.floor(maxConcurrent / 2));
  const base = await Deno.realPath(root).catch(() => {
    throw new NotACacheError(`Cache ${root} does not exist`, { path: root });
  });
  if (!(await Deno.stat(base)).isDirectory) {
    throw new NotACacheError(`${root} is not a folder`, { path: root });
  }
  // Any folder named by mistake (a home folder, a run folder) would be served whole.
  const rootMeta = await Deno.stat(join(base, "zarr.json")).catch(() => undefined);
  if (!rootMeta?.isFile) {
    throw new NotACacheError(
      `${root} is not a VoCo cache (no Zarr group zarr.json at its root): nothing served`,
      { path: root },
    );
  }
  const prefix = base.endsWith(sep) ? base : base + sep;
  const streams = slots(maxConcurrent, perClient, maxQueued, queueTimeoutMs);
  const busy = (head: boolean) => plain(503, "Busy", head, { "retry-after": "1" });

  return async (req: Request, info?: RequestInfo): Promise<Response> => {
    const head = req.method === "HEAD";
    if (req.method === "OPTIONS") return preflight();
    if (req.method !== "GET" && !head) {
      return plain(405, "Method not allowed: the cache is read-only", false, {
        allow: "GET, HEAD, OPTIONS",
      });
    }
    const parts = safeRelative(new URL(req.url).pathname);
    if (!parts) return plain(404, "Not found", head);
    let real: string, info0: Deno.FileInfo;
    try {
      real = await Deno.realPath(join(base, ...parts));
      info0 = await Deno.stat(real);
    } catch {
      return plain(404, "Not found", head);
    }
    // Only regular files (a FIFO would block the read for ever), only inside the cache,
    // never below a hidden folder (a symbolic link may point anywhere).
    const inside = real.startsWith(prefix) &&
      !relative(base, real).split(sep).some((p) => p.startsWith("."));
    if (!inside || !info0.isFile) return plain(404, "Not found", head);
    const size = info0.size;
    const mtime = info0.mtime?.getTime() ?? 0;
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
    if (notModified(req, etag, mtime)) return new Response(null, { status: 304, headers });
    const r = requestedRange(req, size, [etag, lastModified]);
    if (r === "bad") {
      return new Response(null, {
        status: 416,
        headers: { ...headers, "content-range": `bytes */${size}` },
      });
    }
    const [start, end] = r ?? [0, size - 1];
    const status = r ? 206 : 200;
    if (r) headers["content-range"] = `bytes ${start}-${end}/${size}`;
    const length = Math.max(0, end - start + 1);
    headers["content-length"] = String(length);
    if (head || length === 0) return new Response(null, { status, headers });
    const small = length <= SMALL;
    const release = small ? () => {} : await streams.acquire(info?.remoteAddr?.hostname ?? "");
    if (!release) return busy(head);
    const file = await openSame(real, info0, start);
    if (!file) {
      release();
      return plain(404, "Not found", head);
    }
    if (small) {
      try {
        const body = await readFully(file, length);
        if (body.length !== length) return plain(500, `File ended early: ${parts.join("/")}`);
        return new Response(body as Uint8Array<ArrayBuffer>, { status, headers });
      } finally {
        file.close();
      }
    }
    const body = streamFile(file, length, release, { idleTimeoutMs, writeTimeoutMs, real });
    return new Response(body, { status, headers });
  };
}

/** The answer to a CORS preflight: GET and HEAD with ranges and validators, from anywhere. */
function preflight(): Response {
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

/**
 * The file at `real` opened at `start`, if it is still the regular file checked before
 * (`checked`): one replaced between the check and the open is not served.
 */
async function openSame(
  real: string,
  checked: Deno.FileInfo,
  start: number,
): Promise<Deno.FsFile | undefined> {
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(real, { read: true });
    const again = await file.stat();
    if (!again.isFile || again.size !== checked.size || again.ino !== checked.ino) {
      file.close();
      return undefined;
    }
    await file.seek(start, Deno.SeekMode.Start);
    return file;
  } catch {
    file?.close();
    return undefined;
  }
}

/** Whether the client's copy is current (`If-None-Match`, else `If-Modified-Since`). */
function notModified(req: Request, etag: string, mtime: number): boolean {
  const inm = req.headers.get("if-none-match");
  const ims = req.headers.get("if-modified-since");
  if (inm !== null) {
    return inm.split(",").some((t) => {
      const v = t.trim();
      return v === "*" || v === etag || v === `W/${etag}`;
    });
  }
  return ims !== null && !Number.isNaN(Date.parse(ims)) &&
    Math.floor(mtime / 1000) <= Math.floor(Date.parse(ims) / 1000);
}

/**
 * The byte range asked for (`[first, last]`), `undefined` for the whole file (no range, an
 * ignored one, or an `If-Range` the file no longer matches), `"bad"` for one the file
 * cannot satisfy (416).
 */
function requestedRange(
  req: Request,
  size: number,
  validators: string[],
): [number, number] | "bad" | undefined {
  const range = req.headers.get("range");
  const ifRange = req.headers.get("if-range");
  if (range === null || (ifRange !== null && !validators.includes(ifRange.trim()))) return;
  const r = parseRange(range, size);
  return r === "ignore" ? undefined : r;
}

/**
 * `length` bytes of an open file as a stream that holds its slot (`release` frees it) only
 * while it flows: a client that reads nothing for `idleTimeoutMs`, or takes longer than
 * `writeTimeoutMs` in all, is cut off and the file closed.
 */
function streamFile(
  file: Deno.FsFile,
  length: number,
  release: () => void,
  o: { idleTimeoutMs: number; writeTimeoutMs: number; real: string },
): ReadableStream<Uint8Array> {
  const { idleTimeoutMs, writeTimeoutMs, real } = o;
  let left = length;
  let closed = false;
  let idle: ReturnType<typeof setTimeout> | undefined;
  let total: ReturnType<typeof setTimeout> | undefined;
  const finish = () => {
    if (closed) return;
    closed = true;
    clearTimeout(idle);
    clearTimeout(total);
    file.close();
    release();
  };
  let cutOff: ((why: string) => void) | undefined;
  return new ReadableStream<Uint8Array>({
    type: "bytes",
    start(controller) {
      cutOff = (why) => {
        finish();
        try {
          controller.error(new Error(why));
        } catch {
          // Already closed.
        }
      };
      total = setTimeout(() => cutOff!("write timeout"), writeTimeoutMs);
      idle = setTimeout(() => cutOff!("client idle"), idleTimeoutMs);
    },
    async pull(controller) {
      if (closed) return;
      clearTimeout(idle);
      try {
        const buf = await readFully(file, Math.min(READ_CHUNK, left));
        if (buf.length === 0) throw new Error(`File ended early: ${real}`);
        left -= buf.length;
        controller.enqueue(buf);
        if (left <= 0) {
          finish();
          controller.close();
        } else idle = setTimeout(() => cutOff!("client idle"), idleTimeoutMs);
      } catch (e) {
        finish();
        controller.error(e);
      }
    },
    cancel() {
      finish();
    },
  });
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
  let consolidated: string | undefined;
  if (options.consolidate) {
    try {
      const done = await ensureConsolidated(root);
      if (done !== "fresh") {
        consolidated = `${done === "written" ? "consolidated" : "refreshed the consolidated"} ` +
          `metadata of ${root} (URL clients list the cache from it)`;
      }
    } catch (e) {
      consolidated = `note: the consolidated metadata of ${root} could not be written ` +
        `(${(e as Error).message}): URL clients can read cases by name but cannot list them`;
    }
  }
  const counts: Record<number, number> = {};
  let listening!: (addr: Deno.NetAddr) => void;
  const ready = new Promise<Deno.NetAddr>((r) => listening = r);
  const server = Deno.serve({
    hostname,
    port,
    onListen: (addr) => listening(addr as Deno.NetAddr),
    onError: (e) => plain(500, `Internal error: ${(e as Error).message}`),
  }, async (req, info) => {
    const res = await handler(req, info);
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
    consolidated,
    shutdown: () => server.shutdown(),
    finished: server.finished,
  };
}
