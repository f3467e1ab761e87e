// Tests of `HttpStore.size()`: a HEAD request's Content-Length, a one-byte range when a
// server refuses HEAD, 404 as no file, and other answers as errors naming the URL.
import { HttpStore } from "../../../cache/store/http_store.ts";
import { assertEquals, assertRejects } from "../../_helpers.ts";

/** A server on 127.0.0.1 that knows one 1234-byte file, `/f`, and answers as `mode` says. */
function server(mode: "head" | "no-head" | "denied") {
  const body = new Uint8Array(1234);
  const methods: string[] = [];
  const s = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    methods.push(`${req.method} ${req.headers.get("range") ?? ""}`.trim());
    const path = new URL(req.url).pathname;
    if (mode === "denied") return new Response(null, { status: 403 });
    if (path !== "/f") return new Response(null, { status: 404 });
    if (req.method === "HEAD") {
      return mode === "head"
        ? new Response(null, { headers: { "content-length": String(body.length) } })
        : new Response(null, { status: 405 });
    }
    if (req.headers.get("range") === "bytes=0-0") {
      return new Response(body.subarray(0, 1), {
        status: 206,
        headers: { "content-range": `bytes 0-0/${body.length}` },
      });
    }
    return new Response(body);
  });
  return { url: `http://127.0.0.1:${s.addr.port}/`, methods, stop: () => s.shutdown() };
}

Deno.test("HttpStore.size() reads HEAD's Content-Length, one request; 404 is undefined", async () => {
  const s = server("head");
  try {
    const store = new HttpStore(s.url, { retries: 0 });
    assertEquals(await store.size("/f"), 1234);
    assertEquals(await store.size("/missing"), undefined);
    assertEquals(s.methods, ["HEAD", "HEAD"]);
  } finally {
    await s.stop();
  }
});

Deno.test("HttpStore.size() asks for one byte when HEAD is refused, and names the URL of a 403", async () => {
  const s = server("no-head");
  try {
    const store = new HttpStore(s.url, { retries: 0 });
    assertEquals(await store.size("/f"), 1234);
    assertEquals(s.methods, ["HEAD", "GET bytes=0-0"]);
  } finally {
    await s.stop();
  }
  const d = server("denied");
  try {
    await assertRejects(
      () => new HttpStore(d.url, { retries: 0 }).size("/f"),
      /^HEAD http:\/\/127\.0\.0\.1:\d+\/f: 403 Forbidden \(access denied/,
    );
  } finally {
    await d.stop();
  }
});
