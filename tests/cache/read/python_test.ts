// The cache README's Python reading lines, run: its tensorstore lines (over HTTP from
// `serveCache`, and from the folder) and its `decode`, against cases written in every
// storage the writer makes, compared bit for bit with `readCase` and `CacheReader.readCrop`.
// Needs a Python with tensorstore >= 0.1.51 and NumPy (VOCO_TENSORSTORE_PYTHON or VOCO_PYTHON
// names it, else python3);
// skipped with a message where there is none.
import { join } from "node:path";
import { FileSystemStore } from "@zarrita/storage";
import { ensureDataset, initCache } from "../../../cache/write/cache_dir.ts";
import { type BloscShuffle, writeCase } from "../../../cache/write/write_case.ts";
import { storageEncoding } from "../../../cache/format/quantize.ts";
import type { Compressor, Layout } from "../../../cache/format/format.ts";
import type { CaseShape } from "../../../cache/format/case_volume.ts";
import { readCase } from "../../../cache/read/read_case.ts";
import { CacheReader } from "../../../cache/read/cache_reader.ts";
import { serveCache } from "../../../cache/store/serve.ts";
import { assert, assertEquals, tempDir } from "../../_helpers.ts";
import { testVolume } from "../_caches.ts";
import { ROOT } from "../../tasks/_run.ts";

const README = Deno.readTextFileSync(join(ROOT, "cache", "README.md"));

/**
 * The first of VOCO_TENSORSTORE_PYTHON, VOCO_PYTHON, python3 and /usr/bin/python3 that
 * imports tensorstore, NumPy and the `more` modules.
 */
async function findPython(...more: string[]): Promise<string | undefined> {
  const named = [Deno.env.get("VOCO_TENSORSTORE_PYTHON"), Deno.env.get("VOCO_PYTHON")];
  for (const py of [...named, "python3", "/usr/bin/python3"]) {
    if (!py) continue;
    try {
      const out = await new Deno.Command(py, {
        args: ["-c", `import ${["tensorstore", "numpy", ...more].join(", ")}`],
        stdout: "null",
        stderr: "null",
      }).output();
      if (out.success) return py;
    } catch {
      // not installed: try the next
    }
  }
  return undefined;
}

/** Runs `code` in `python`; its output, after asserting that it succeeded. */
async function runPython(python: string, code: string): Promise<string> {
  const run = await new Deno.Command(python, {
    args: ["-c", code],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder().decode(run.stdout) + new TextDecoder().decode(run.stderr);
  assert(run.success, `${code}\n${text}`);
  return text;
}

/** The README's Python blocks: `decode`, and the tensorstore lines of the HTTP block. */
function readmeLines(): { decode: string; tensorstore: string; folder: string } {
  const blocks = [...README.matchAll(/```python\n([\s\S]*?)```/g)].map((m) => m[1]);
  const first = blocks.find((b) => b.includes("def decode"));
  const http = blocks.find((b) => b.includes("tensorstore as ts"));
  assert(first && http, "the cache README has lost its Python reading lines");
  const decode = first.slice(
    first.indexOf("def decode"),
    first.indexOf("\n\n", first.indexOf("def decode")),
  );
  const ts = http.slice(http.indexOf("import json, urllib.request, tensorstore as ts"));
  const lines = ts.split("\n");
  const folderAt = lines.findIndex((l) => l.startsWith("# a folder: "));
  assert(folderAt > 0, "the README's folder line for tensorstore is gone");
  const tensorstore = lines.slice(0, folderAt).join("\n");
  // The commented folder variant, uncommented.
  const folder = lines.slice(folderAt, folderAt + 2).map((l) => l.replace(/^# (a folder: )?/, ""))
    .join("\n").trim();
  return { decode, tensorstore, folder };
}

const SHAPE: CaseShape = [110, 100, 70]; // holds the README's crop [10:106, 0:96, 0:64]
const SETTINGS: [
  string,
  Layout,
  Compressor,
  "uint16" | "uint8" | "float32",
  BloscShuffle?,
  number?,
][] = [
  ["example_ct", "sharded", "blosc-zstd", "uint16"], // prep's default
  ["chunked", "chunked", "blosc-zstd", "uint16"],
  ["bitshuffle", "sharded", "blosc-zstd", "uint16", "bitshuffle"],
  ["noshuffle", "sharded", "blosc-zstd", "uint16", "noshuffle"],
  ["zstd", "sharded", "zstd", "uint16"],
  ["lz4", "sharded", "blosc-lz4", "uint16"],
  ["none", "sharded", "none", "uint16"],
  ["bytes8", "sharded", "blosc-zstd", "uint8"],
  ["float", "chunked", "blosc-zstd", "float32"],
  ["level9", "sharded", "blosc-zstd", "uint16", undefined, 9], // zstd 22, one block per chunk
  ["level0", "sharded", "blosc-zstd", "uint16", undefined, 0], // memcpyed frames
];

Deno.test("the cache README's tensorstore lines read every storage the writer makes, bit for bit", async (t) => {
  const python = await findPython();
  if (!python) {
    console.warn(
      "Skipping the Python reading lines: no Python with tensorstore and NumPy here " +
        "(VOCO_TENSORSTORE_PYTHON names one).",
    );
    return;
  }
  const { decode, tensorstore, folder } = readmeLines();
  await using dir = await tempDir();
  const root = join(dir.path, "ct.zarr");
  await initCache(root);
  await ensureDataset(root, "ct");
  const store = new FileSystemStore(root);
  for (const [i, [name, layout, compressor, dtype, shuffle, level]] of SETTINGS.entries()) {
    const volume = testVolume(SHAPE, 11 + i);
    await writeCase(store, `/ct/${name}`, volume, {
      encoding: storageEncoding(dtype, [0, 1], { windowWidthHu: 425 }),
      layout,
      compressor,
      level: level ?? (compressor === "none" ? 0 : 3),
      shuffle,
      attributes: { affine: volume.affine, spacing: [1.5, 1.5, 1.5] },
    });
  }
  const server = await serveCache(root, { port: 0, consolidate: true });
  try {
    const reader = await CacheReader.open(root);
    for (const [name] of SETTINGS) {
      await t.step(name, async () => {
        const url = `${server.url}ct/${name}/`;
        const out = join(dir.path, name);
        const code = [
          "import numpy as np",
          decode,
          tensorstore.replace('"http://127.0.0.1:8000/ct/example_ct/"', JSON.stringify(url)),
          `crop.astype("<f4").tofile(${JSON.stringify(out + ".http.crop")})`,
          `decode(t.read().result(), a).astype("<f4").tofile(${JSON.stringify(out + ".http.all")})`,
          "t = " +
          folder.replace('"ct.zarr/ct/example_ct/"', JSON.stringify(`${root}/ct/${name}/`)) +
          ".result()",
          `decode(t[10:106, 0:96, 0:64].read().result(), a).astype("<f4").tofile(${
            JSON.stringify(out + ".file.crop")
          })`,
          `print(t.dtype, t.shape)`,
        ].join("\n");
        await runPython(python, code);
        const floats = async (f: string) => new Float32Array((await Deno.readFile(f)).buffer);
        const whole = await readCase(store, `/ct/${name}`);
        const crop = await reader.readCrop(`ct/${name}`, [10, 0, 0], [96, 96, 64]);
        const same = (a: Float32Array, b: Float32Array, what: string) => {
          assertEquals(a.length, b.length, what);
          let diff = 0;
          for (let j = 0; j < a.length; j++) if (a[j] !== b[j]) diff++;
          assertEquals(diff, 0, `${what}: ${diff} of ${a.length} values differ`);
        };
        same(await floats(out + ".http.all"), whole.data, `${name}: whole array over HTTP`);
        same(await floats(out + ".http.crop"), crop.data, `${name}: the crop over HTTP`);
        same(await floats(out + ".file.crop"), crop.data, `${name}: the crop from the folder`);
      });
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("the cache README's NumPy lines read lorenzo cases; tensorstore refuses to open them", async () => {
  const python = await findPython("numcodecs");
  if (!python) {
    console.warn(
      "Skipping the lorenzo reading lines: no Python with tensorstore, NumPy and numcodecs " +
        "here (VOCO_TENSORSTORE_PYTHON names one).",
    );
    return;
  }
  const block = [...README.matchAll(/```python\n([\s\S]*?)```/g)].map((m) => m[1])
    .find((b) => b.includes("def read_lorenzo"));
  assert(block, "the cache README has lost its lorenzo reading lines");
  const { decode } = readmeLines();
  await using dir = await tempDir();
  const root = join(dir.path, "ct.zarr");
  await initCache(root);
  await ensureDataset(root, "ct");
  const store = new FileSystemStore(root);
  const cases: [string, Layout, "uint16" | "uint8", CaseShape][] = [
    ["example_ct", "sharded", "uint16", SHAPE],
    ["chunked", "chunked", "uint16", [50, 33, 20]],
    ["bytes8", "sharded", "uint8", [41, 30, 52]],
  ];
  for (const [i, [name, layout, dtype, shape]] of cases.entries()) {
    const volume = testVolume(shape, 40 + i);
    await writeCase(store, `/ct/${name}`, volume, {
      encoding: storageEncoding(dtype, [0, 1], { windowWidthHu: 425 }),
      layout,
      compressor: "lorenzo",
      chunk: 16,
      attributes: { affine: volume.affine, spacing: [1.5, 1.5, 1.5] },
    });
    const out = join(dir.path, `${name}.f32`);
    const code = [
      decode,
      block.replace('"ct.zarr/ct/example_ct"', JSON.stringify(`${root}/ct/${name}`)),
      `vol.astype("<f4").tofile(${JSON.stringify(out)})`,
      "import tensorstore as ts",
      "try:",
      `    ts.open({"driver": "zarr3", "kvstore": {"driver": "file", "path": ${
        JSON.stringify(`${root}/ct/${name}/`)
      }}}, read=True).result()`,
      "    print('OPENED')",
      "except Exception as e:",
      "    print('REFUSED', str(e))",
    ].join("\n");
    const text = await runPython(python, code);
    assert(text.includes("REFUSED") && text.includes("voco.lorenzo"), `tensorstore: ${text}`);
    const got = new Float32Array((await Deno.readFile(out)).buffer);
    const whole = await readCase(store, `/ct/${name}`);
    assertEquals(got.length, whole.data.length);
    let diff = 0;
    for (let j = 0; j < got.length; j++) if (got[j] !== whole.data[j]) diff++;
    assertEquals(diff, 0, `${name}: ${diff} of ${got.length} values differ`);
  }
});
