// The viewer's web server: serves the page (and NiiVue's bundle, from the npm package) on
// 127.0.0.1 and answers its API over the caches (cases, slabs read chunk by chunk, the VoCo
// sample for a seed) and the run folders (config, metrics polled as they grow).
import { esm as niivueBundle } from "@niivue/niivue/min";
import type { CacheReaderOptions } from "../cache/read/cache_reader.ts";
import { BadInputError } from "../cache/errors.ts";
import { Catalog } from "./catalog.ts";
import { findRuns, type RunEntry, RunReader } from "./runs.ts";
import { sampleView } from "./sample.ts";

/** Options of {@linkcode startViewer}. */
export interface ViewerOptions {
  /** Caches to show: folders, `http(s)://` or `s3://` URLs. @default [] */
  caches?: readonly string[];
  /** Run folders, or folders of run folders. @default [] */
  runs?: readonly string[];
  /** Port on 127.0.0.1; 0 picks a free one. @default 6007 */
  port?: number;
  /** The case the printed URL opens, `DATASET/CASE`. @default the first case */
  openCase?: string;
  /** Options of the cache readers (S3 endpoint, credentials, headers). */
  reader?: CacheReaderOptions;
}

/** A running viewer. */
export interface Viewer {
  /** The URL that opens on data: the first (or the named) case, else the runs. */
  url: string;
  /** The port it listens on. */
  port: number;
  /** Stops the server. */
  close(): Promise<void>;
}

const CLIENT = ["index.html", "app.js", "chart.js", "overlay.js", "style.css"];
const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
};

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store" },
  });

/** The HTTP status of an error: 400 for bad input, 404 for a missing case or run, else 500. */
function statusOf(e: unknown): number {
  if (e instanceof BadInputError) return 400;
  if (e instanceof Deno.errors.NotFound) return 404;
  return 500;
}

function intParam(q: URLSearchParams, name: string, fallback?: number): number {
  const raw = q.get(name);
  if (raw === null || raw === "") {
    if (fallback !== undefined) return fallback;
    throw new BadInputError(`Missing parameter ${name}`);
  }
  const v = Number(raw);
  if (!Number.isInteger(v)) {
    throw new BadInputError(`Parameter ${name} must be an integer, got "${raw}"`);
  }
  return v;
}

/** The API's answers, by path (`/api/...`). */
function api(catalog: Catalog, runs: RunEntry[], reader: RunReader) {
  const run = (q: URLSearchParams) => {
    const r = runs[intParam(q, "run")];
    if (!r) throw new Deno.errors.NotFound(`No run ${q.get("run")} (there are ${runs.length})`);
    return r;
  };
  const optional = (q: URLSearchParams, k: string) => q.get(k) ? intParam(q, k) : undefined;
  return {
    "/api/state": () =>
      json({
        caches: catalog.readers.map((r) => r.location),
        cases: catalog.list(),
        runs: runs.map(({ id, name }) => ({ id, name })),
      }),
    "/api/case": (q: URLSearchParams) =>
      json(catalog.describe(intParam(q, "cache", 0), q.get("id") ?? "")),
    "/api/slab": async (q: URLSearchParams) => {
      const bytes = await catalog.slab(
        intParam(q, "cache", 0),
        q.get("id") ?? "",
        intParam(q, "z0"),
        intParam(q, "z1"),
      );
      return new Response(bytes, { headers: { "content-type": "application/octet-stream" } });
    },
    "/api/sample": (q: URLSearchParams) => {
      const info = catalog.describe(intParam(q, "cache", 0), q.get("id") ?? "");
      return json(sampleView(info.shape, info.recipe, {
        seed: intParam(q, "seed", 0),
        sample: intParam(q, "sample", 0),
        crops: optional(q, "crops"),
        grid: optional(q, "grid"),
        roi: optional(q, "roi"),
      }));
    },
    "/api/run": async (q: URLSearchParams) => {
      const r = run(q);
      return json({ id: r.id, name: r.name, dir: r.dir, config: await reader.config(r.dir) });
    },
    "/api/metrics": async (q: URLSearchParams) => {
      const after = q.get("after") ? Number(q.get("after")) : -Infinity;
      return json(await reader.metrics(run(q).dir, after));
    },
  } as Record<string, (q: URLSearchParams) => Response | Promise<Response>>;
}

/** A case id in a query string, its slash kept readable as the page writes it (`ct/a`). */
const caseParam = (id: string) => encodeURIComponent(id).replaceAll("%2F", "/");

/** The URL the viewer opens on: the named case, else the first case, else the runs. */
function openingUrl(base: string, catalog: Catalog, runs: RunEntry[], name?: string): string {
  const cases = catalog.list().filter((c) => !c.error);
  if (name) {
    const found = cases.find((c) => c.id === name.replace(/^\/+/, ""));
    if (!found) {
      throw new BadInputError(
        `No case ${name} in ${catalog.readers.map((r) => r.location).join(", ") || "no cache"}` +
          (cases.length
            ? `; the first cases: ${cases.slice(0, 5).map((c) => c.id).join(", ")}`
            : ""),
      );
    }
    return `${base}/?cache=${found.cache}&case=${caseParam(found.id)}`;
  }
  if (cases.length) {
    return `${base}/?cache=${cases[0].cache}&case=${caseParam(cases[0].id)}`;
  }
  if (runs.length) return `${base}/?view=runs&runs=0`;
  return `${base}/`;
}

/**
 * Opens the caches and finds the runs, then serves the viewer on 127.0.0.1 (requests
 * naming another host are refused, against DNS rebinding). Throws naming a cache or run
 * folder that cannot be opened, or a `openCase` that no cache holds.
 */
export async function startViewer(options: ViewerOptions = {}): Promise<Viewer> {
  // A cache or run folder named on the command line that cannot be opened is bad input.
  const named = <T>(p: Promise<T>) =>
    p.catch((e: Error) => {
      throw e instanceof BadInputError ? e : new BadInputError(e.message, { cause: e });
    });
  const catalog = await named(Catalog.open(options.caches ?? [], options.reader));
  const runs = await named(findRuns(options.runs ?? []));
  if (!catalog.readers.length && !runs.length) {
    throw new BadInputError("Nothing to show: name a cache or a run folder (--run)");
  }
  const routes = api(catalog, runs, new RunReader());
  let bundle: string | undefined;
  const files = new Map<string, Uint8Array<ArrayBuffer>>();
  let port = 0;
  const handler = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    const host = req.headers.get("host") ?? "";
    if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`) {
      return new Response("Forbidden host", { status: 403 });
    }
    try {
      if (url.pathname.startsWith("/api/")) {
        const route = routes[url.pathname];
        if (!route) return json({ error: `No API ${url.pathname}` }, 404);
        return await route(url.searchParams);
      }
      if (url.pathname === "/niivue.js") {
        bundle ??= decodeURIComponent(niivueBundle);
        return new Response(bundle, {
          headers: { "content-type": TYPES.js, "cache-control": "max-age=3600" },
        });
      }
      const name = url.pathname === "/" ? "index.html" : url.pathname.slice(1);
      if (!CLIENT.includes(name)) return new Response("Not found", { status: 404 });
      if (!files.has(name)) {
        files.set(name, await Deno.readFile(new URL(`./client/${name}`, import.meta.url)));
      }
      return new Response(files.get(name)!, {
        headers: { "content-type": TYPES[name.split(".").pop()!] },
      });
    } catch (e) {
      return json({ error: (e as Error).message }, statusOf(e));
    }
  };
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: options.port ?? 6007,
    onListen: () => {},
  }, handler);
  port = server.addr.port;
  const base = `http://127.0.0.1:${port}`;
  let url: string;
  try {
    url = openingUrl(base, catalog, runs, options.openCase);
  } catch (e) {
    await server.shutdown();
    throw e;
  }
  return { url, port, close: () => server.shutdown() };
}
