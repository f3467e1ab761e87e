// An S3-speaking server (s3rver) on 127.0.0.1 for the tests, holding a cache folder.
import { join, relative } from "node:path";
import S3rver from "s3rver";
import { AwsClient } from "aws4fetch";
import { assert, assertEquals } from "../_helpers.ts";

/** The credentials s3rver accepts. */
export const CREDS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER", region: "us-east-1" };

async function* files(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) yield* files(p);
    else if (e.isFile) yield p;
  }
}

/** A running s3rver: its endpoint, a PUT of one object, and how to stop it. */
export interface TestS3 {
  /** `http://127.0.0.1:<port>`. */
  endpoint: string;
  /** Uploads `bytes` as `bkt/<key>` (signed). */
  put(key: string, bytes: Uint8Array): Promise<void>;
  /** Stops the server. */
  close(): Promise<void>;
}

/**
 * An s3rver on 127.0.0.1 (random port, its files under `dir/s3`) with bucket `bkt`
 * holding the files of `root` under `prefix`.
 */
export async function startS3(dir: string, root: string, prefix: string): Promise<TestS3> {
  const server = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory: join(dir, "s3"),
    configureBuckets: [{ name: "bkt", configs: [] }],
  });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const aws = new AwsClient({ ...CREDS, service: "s3", retries: 0 });
  const put = async (key: string, bytes: Uint8Array) => {
    const r = await aws.fetch(`${endpoint}/bkt/${key}`, {
      method: "PUT",
      body: bytes as Uint8Array<ArrayBuffer>,
      signal: AbortSignal.timeout(10000),
    });
    assertEquals(r.status, 200, `PUT ${key}: ${await r.text()}`);
  };
  let uploads = 0;
  for await (const f of files(root)) {
    await put(`${prefix}/${relative(root, f)}`, await Deno.readFile(f));
    uploads++;
  }
  assert(uploads > 0 && uploads < 200, `${uploads} uploads`);
  return { endpoint, put, close: () => server.close() };
}
