// libdeflate (through FFI) against the runtime's zlib: the same bytes, the same trailing
// flag and the same errors on every kind of stream, hostile ones included.
import { deflateSync, gzipSync } from "node:zlib";
import { gunzip, INFLATE, inflateDeclared } from "../../../prep/formats/decompress.ts";
import { assert, assertEquals } from "../../_helpers.ts";

/** Seeded bytes that compress like image data: runs and noise. */
function bytes(n: number, seed: number): Uint8Array {
  let s = seed >>> 0;
  return Uint8Array.from({ length: n }, (_, i) => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (i >> 6) % 7 === 0 ? 0 : (s >>> 24) & 0x1f;
  });
}

/** Whether libdeflate loads here (the library and --allow-ffi). */
function libdeflateLoads(): boolean {
  // A one-member stream of 64 KiB: inflated by libdeflate when it loads. Its result is
  // compared below either way; here we only tell the user whether the test compared two
  // implementations.
  try {
    return Deno.permissions.querySync({ name: "ffi" }).state === "granted" &&
      (() => {
        Deno.dlopen("libdeflate.so.0", {}).close();
        return true;
      })();
  } catch {
    return false;
  }
}

type Outcome = { data?: number[]; trailing?: boolean; error?: string };

function outcome(f: () => { data: Uint8Array; trailing?: boolean } | Uint8Array): Outcome {
  try {
    const r = f();
    const data = r instanceof Uint8Array ? r : r.data;
    // Fingerprint: length, sum, and a few bytes (the arrays are large).
    const sum = data.reduce((a, b) => (a * 31 + b) >>> 0, 0);
    return {
      data: [data.length, sum, ...data.subarray(0, 8)],
      trailing: r instanceof Uint8Array ? undefined : r.trailing,
    };
  } catch (e) {
    return { error: `${(e as Error).name}: ${(e as Error).message}` };
  }
}

Deno.test("inflateDeclared() and gunzip() give the same results with libdeflate as with zlib", () => {
  if (!libdeflateLoads()) {
    console.log(
      "  libdeflate (Debian's libdeflate0) or --allow-ffi missing: zlib only, compared with itself",
    );
  }
  const a = bytes(300_000, 1), b = bytes(70_000, 2);
  const one = new Uint8Array(gzipSync(a)), two = new Uint8Array([...gzipSync(a), ...gzipSync(b)]);
  const corrupt = new Uint8Array(one);
  corrupt[one.length >> 1] ^= 0x55;
  const cases: [string, Uint8Array, number][] = [
    ["one member, exact size", one, a.length],
    ["one member, declared larger (short stream)", one, a.length + 1000],
    ["one member, declared smaller (a bomb's prefix)", one, 1000],
    ["two members", two, a.length + b.length],
    ["two members, declared the first", two, a.length],
    ["trailing garbage", new Uint8Array([...one, 1, 2, 3, 4, 5, 6, 7, 8]), a.length],
    ["truncated", one.subarray(0, one.length - 100), a.length],
    ["corrupt", corrupt, a.length],
    ["empty", new Uint8Array(0), 10],
  ];
  for (const [what, stream, declared] of cases) {
    const run = (fast: boolean) => {
      INFLATE.libdeflate = fast;
      try {
        return [
          outcome(() => inflateDeclared(stream, "gzip", declared)),
          outcome(() => gunzip(stream)),
        ];
      } finally {
        INFLATE.libdeflate = true;
      }
    };
    assertEquals(run(true), run(false), what);
  }
  const z = deflateSync(a);
  for (const declared of [a.length, a.length - 7, a.length + 7]) {
    const run = (fast: boolean) => {
      INFLATE.libdeflate = fast;
      try {
        return outcome(() => inflateDeclared(z, "zlib", declared));
      } finally {
        INFLATE.libdeflate = true;
      }
    };
    assertEquals(run(true), run(false), `zlib stream, declared ${declared}`);
  }
  const whole = gunzip(one);
  assert(whole.length === a.length && whole.every((v, i) => v === a[i]), "round trip");
});
