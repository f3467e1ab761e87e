// `s3://bucket/prefix` locations: the endpoint and credentials (options, then the usual
// AWS_* variables), and listing "folders" and objects with ListObjectsV2.
import type { HttpStore, S3Signing } from "./http_store.ts";

/** Where and how to reach an S3-compatible service (all fields optional, plain data). */
export interface S3Options {
  /** Endpoint URL (`http://127.0.0.1:9000`); default `AWS_ENDPOINT_URL_S3`,
   * `AWS_ENDPOINT_URL`, else AWS (`https://s3.<region>.amazonaws.com`). */
  endpoint?: string;
  /** Region; default `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`. */
  region?: string;
  /** Access key id; default `AWS_ACCESS_KEY_ID`. */
  accessKeyId?: string;
  /** Secret key; default `AWS_SECRET_ACCESS_KEY`. */
  secretAccessKey?: string;
  /** Session token; default `AWS_SESSION_TOKEN`. */
  sessionToken?: string;
  /** Send unsigned requests (a public bucket), whatever the credentials. @default {false} */
  anonymous?: boolean;
}

/** An environment variable, or `undefined` when unset or not permitted. */
function env(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/** The HTTP base URL and signing of `s3://bucket/prefix`. */
export function resolveS3(
  url: string,
  options: S3Options = {},
): { base: string; bucket: string; prefix: string; endpoint: string; s3?: S3Signing } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m || !m[1]) throw new TypeError(`Not an S3 URL "${url}" (expected s3://bucket/prefix)`);
  const [, bucket, rest] = m;
  const prefix = rest.replace(/\/+$/, "");
  const region = options.region ?? env("AWS_REGION") ?? env("AWS_DEFAULT_REGION") ??
    "us-east-1";
  const given = options.endpoint ?? env("AWS_ENDPOINT_URL_S3") ?? env("AWS_ENDPOINT_URL");
  // A custom endpoint (MinIO, s3rver, Ceph...) is addressed path-style; AWS by host name.
  const endpoint = (given ?? `https://${bucket}.s3.${region}.amazonaws.com`).replace(/\/+$/, "");
  const root = given ? `${endpoint}/${encodeURIComponent(bucket)}` : endpoint;
  const base = `${root}/${prefix ? `${prefix.split("/").map(encodeURIComponent).join("/")}/` : ""}`;
  const accessKeyId = options.accessKeyId ?? env("AWS_ACCESS_KEY_ID");
  const secretAccessKey = options.secretAccessKey ?? env("AWS_SECRET_ACCESS_KEY");
  const s3 = !options.anonymous && accessKeyId && secretAccessKey
    ? {
      accessKeyId,
      secretAccessKey,
      sessionToken: options.sessionToken ?? env("AWS_SESSION_TOKEN"),
      region,
    }
    : undefined;
  return { base, bucket, prefix, endpoint: root, s3 };
}

function unescapeXml(s: string): string {
  return s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'").replace(/&#(\d+);/g, (_, d) => String.fromCharCode(Number(d)))
    .replace(/&amp;/g, "&");
}

/** Every page of ListObjectsV2 of `prefix/` in `bucket` (`delimiter` "/" or none). */
async function* listPages(
  store: HttpStore,
  bucketRoot: string,
  prefix: string,
  delimiter: boolean,
): AsyncGenerator<string> {
  let token: string | undefined;
  for (let page = 0; page < 1_000_000; page++) {
    const q = new URLSearchParams({ "list-type": "2", prefix });
    if (delimiter) q.set("delimiter", "/");
    if (token) q.set("continuation-token", token);
    const url = `${bucketRoot}?${q}`;
    const res = await store.fetch(url);
    const text = await res.text();
    if (res.status !== 200) {
      const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
      throw new Error(
        `Listing ${url}: ${res.status} ${res.statusText}${code ? ` (${code})` : ""}`,
      );
    }
    yield text;
    const truncated = /<IsTruncated>true<\/IsTruncated>/.test(text);
    token = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(text)?.[1];
    if (!truncated || !token) break;
    token = unescapeXml(token);
  }
}

/** `prefix` as a folder prefix for ListObjectsV2 (`a/b/`; "" for the bucket's root). */
function folderPrefix(prefix: string): string {
  return prefix ? `${prefix.replace(/\/+$/, "")}/` : "";
}

/**
 * The "sub-folders" (common prefixes) directly below `prefix/` in `bucket`, their names
 * only, in order; all pages of ListObjectsV2 are read.
 */
export async function listS3Folders(
  store: HttpStore,
  bucketRoot: string,
  prefix: string,
): Promise<string[]> {
  const p = folderPrefix(prefix);
  const names: string[] = [];
  for await (const text of listPages(store, bucketRoot, p, true)) {
    for (const m of text.matchAll(/<CommonPrefixes>\s*<Prefix>([^<]*)<\/Prefix>/g)) {
      const full = unescapeXml(m[1]);
      names.push(full.slice(p.length).replace(/\/$/, ""));
    }
  }
  return names.sort();
}

/**
 * Every object below `prefix/` in `bucket`, at any depth, with its size, in key order:
 * ListObjectsV2 without a delimiter, 1000 objects a request.
 */
export async function listS3Objects(
  store: HttpStore,
  bucketRoot: string,
  prefix: string,
): Promise<{ key: string; size: number }[]> {
  const p = folderPrefix(prefix);
  const out: { key: string; size: number }[] = [];
  for await (const text of listPages(store, bucketRoot, p, false)) {
    for (const m of text.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
      const key = /<Key>([^<]*)<\/Key>/.exec(m[1])?.[1];
      const size = /<Size>(\d+)<\/Size>/.exec(m[1])?.[1];
      if (key === undefined || size === undefined) continue;
      out.push({ key: unescapeXml(key).slice(p.length), size: Number(size) });
    }
  }
  return out.sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}
