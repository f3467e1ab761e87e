// Tests of the NIfTI reader.
import { gzipSync } from "node:zlib";
import { inflateDeclared } from "../../../prep/formats/decompress.ts";
import { readNifti } from "../../../prep/formats/read_nifti.ts";
import { writeNifti } from "../../../prep/formats/write_nifti.ts";
import { makePhantom, orientedAffine } from "../../../prep/synthetic/phantom.ts";
import type { Volume } from "../../../prep/volume.ts";
import { assert, assertClose, assertEquals, assertRejects, fileOrder } from "../../_helpers.ts";

function small(): Volume<Float32Array> {
  const shape: [number, number, number] = [5, 4, 3];
  const data = new Float32Array(60).map((_, i) => i * 7 - 100);
  return { data, shape, affine: orientedAffine("LPS", shape, [0.7, 0.8, 2.5]) };
}

Deno.test("readNifti() reads back every datatype in C order with the sform affine", () => {
  const v = small();
  for (const dtype of ["int16", "int32", "float32", "float64"] as const) {
    for (const gzip of [true, false]) {
      const img = readNifti(writeNifti(v, { dtype, gzip }));
      assertEquals(img.volume.shape, [3, 4, 5], dtype);
      const back = fileOrder(img.volume);
      assertEquals(back.shape, v.shape, dtype);
      assertEquals(Array.from(back.data), Array.from(v.data), dtype);
      assertClose(back.affine, v.affine, 1e-5, dtype);
      assertEquals(img.sourceDtype, dtype);
    }
  }
  const u8 = { ...v, data: v.data.map((_, i) => i) };
  assertEquals(
    Array.from(fileOrder(readNifti(writeNifti(u8, { dtype: "uint8" })).volume).data),
    Array.from(u8.data),
  );
});

Deno.test("readNifti() reads every scalar datatype nibabel reads, in both byte orders", () => {
  const v = small(); // values -100 .. 313
  const positive = { ...v, data: v.data.map((_, i) => i * 4) }; // 0 .. 236
  const types = [
    ["uint8", positive, "uint8"],
    ["int8", { ...v, data: v.data.map((x) => Math.round(x / 4)) }, "int8"],
    ["int16", v, "int16"],
    ["uint16", positive, "uint16"],
    ["int32", v, "int32"],
    ["uint32", positive, "uint32"],
    ["int64", v, "int64"],
    ["uint64", positive, "uint64"],
    ["float32", { ...v, data: v.data.map((x) => x + 0.25) }, "float32"],
    ["float64", { ...v, data: v.data.map((x) => x + 0.125) }, "float64"],
    ["float128", { ...v, data: v.data.map((x) => x - 0.5) }, "float128"],
  ] as const;
  for (const [dtype, vol, name] of types) {
    for (const bigEndian of [false, true]) {
      const label = `${dtype} ${bigEndian ? "big" : "little"} endian`;
      const img = readNifti(writeNifti(vol, { dtype, bigEndian }));
      assertEquals(img.sourceDtype, name, label);
      const back = fileOrder(img.volume);
      assertEquals(Array.from(back.data), Array.from(vol.data).map(Math.fround), label);
      assertClose(back.affine, v.affine, 1e-5, label);
    }
  }
  // With scl_slope/scl_inter, 64-bit integers are scaled like the others.
  const scaled = readNifti(writeNifti(v, { dtype: "int64", sclSlope: 0.5, sclInter: -10 }));
  assertClose(Array.from(fileOrder(scaled.volume).data), Array.from(v.data), 0.25);
});

Deno.test("readNifti() refuses a non-scalar datatype by name, with the reason", async () => {
  const cases: [number, RegExp][] = [
    [32, /datatype 32 \(complex64\): a complex-valued image/],
    [1792, /complex128/],
    [128, /128 \(RGB24\): a colour image, not CT/],
    [2304, /RGBA32/],
    [1, /binary, one bit per voxel/],
    [0, /declares no voxel type/],
    [99, /datatype 99 \(not a NIfTI type code\)/],
  ];
  for (const [code, pattern] of cases) {
    await assertRejects(() => readNifti(edited((h) => h.setInt16(70, code, true))), pattern);
  }
});

Deno.test("readNifti() uses the qform when sform_code is 0, as nibabel does", () => {
  const v = small();
  const img = readNifti(writeNifti(v, { transform: "qform" }));
  assertClose(fileOrder(img.volume).affine, v.affine, 1e-5);
});

Deno.test("readNifti() falls back to nibabel's base affine without sform and qform", () => {
  const v = small();
  const img = readNifti(writeNifti(v, { transform: "none" }));
  // shape_zoom_affine: x flipped, centred on the volume.
  assertClose(fileOrder(img.volume).affine, [
    [-0.7, 0, 0, 2 * 0.7],
    [0, 0.8, 0, -1.5 * 0.8],
    [0, 0, 2.5, -1 * 2.5],
    [0, 0, 0, 1],
  ], 1e-5);
});

Deno.test("readNifti() applies scl_slope and scl_inter", () => {
  const v = small();
  const img = readNifti(writeNifti(v, { sclSlope: 0.5, sclInter: -1024 }));
  assert(img.volume.data instanceof Float32Array);
  assertClose(Array.from(fileOrder(img.volume).data), Array.from(v.data), 0.5);
});

Deno.test("readNifti() rejects files that are not NIfTI", async () => {
  await assertRejects(
    () => readNifti(new TextEncoder().encode("hello world".repeat(50))),
    /Not a NIfTI/,
  );
});

Deno.test("readNifti() rejects truncated gzip", async () => {
  const bytes = writeNifti(makePhantom({ shape: [20, 20, 20] }));
  await assertRejects(() => readNifti(bytes.subarray(0, bytes.length >> 1)), /gzip/);
});

Deno.test("readNifti() rejects a header that promises more voxels than the file holds", async () => {
  const bytes = writeNifti(small(), { gzip: false });
  await assertRejects(() => readNifti(bytes.subarray(0, bytes.length - 10)), /promises \d+ bytes/);
});

Deno.test("readNifti() rejects 2-D and 4-D images", async () => {
  const v = small();
  const flat = writeNifti({ ...v, shape: [20, 3, 1], data: v.data }, { gzip: false });
  await assertRejects(() => readNifti(flat), /2-D/);
  const four = writeNifti({ ...v, shape: [5, 4, 3] }, { gzip: false });
  const view = new DataView(four.buffer);
  view.setInt16(40, 4, true);
  view.setInt16(48, 2, true);
  await assertRejects(() => readNifti(four), /4-D/);
});

Deno.test("readNifti() rejects NaN and infinite voxels", async () => {
  const v = small();
  v.data[3] = NaN;
  v.data[7] = Infinity;
  await assertRejects(() => readNifti(writeNifti(v, { dtype: "float32" })), /2 NaN or infinite/);
});

Deno.test("readNifti() rejects zero or negative spacing", async () => {
  const v = small();
  const zero = writeNifti(v, { transform: "qform", gzip: false });
  new DataView(zero.buffer).setFloat32(84, 0, true);
  await assertRejects(() => readNifti(zero), /spacing/);
  const neg = writeNifti(v, { transform: "none", gzip: false });
  new DataView(neg.buffer).setFloat32(88, -1, true);
  await assertRejects(() => readNifti(neg), /spacing must be positive/);
  const sform = writeNifti({ ...v, affine: v.affine.map((r) => [0, r[1], r[2], r[3]]) });
  await assertRejects(() => readNifti(sform), /spacing along axis 0 is zero/);
});

Deno.test("readNifti() reads NIfTI-2 headers", () => {
  // Build a NIfTI-2 file by hand: 540-byte header, int16 voxels.
  const shape = [4, 3, 2];
  const buf = new ArrayBuffer(544 + 24 * 2);
  const h = new DataView(buf);
  h.setInt32(0, 540, true);
  new Uint8Array(buf).set(new TextEncoder().encode("n+2\0\r\n\x1a\n"), 4);
  h.setInt16(12, 4, true);
  h.setInt16(14, 16, true);
  h.setBigInt64(16, 3n, true);
  shape.forEach((d, i) => h.setBigInt64(24 + 8 * i, BigInt(d), true));
  [1, 1.5, 2, 3].forEach((z, i) => h.setFloat64(104 + 8 * i, z, true));
  h.setBigInt64(168, 544n, true);
  h.setInt32(348, 1, true); // sform_code
  const srow = [[1.5, 0, 0, -10], [0, 2, 0, 5], [0, 0, 3, 7]];
  srow.forEach((r, i) => r.forEach((x, j) => h.setFloat64(400 + (i * 4 + j) * 8, x, true)));
  const vox = new Int16Array(buf, 544, 24);
  vox.forEach((_, i) => vox[i] = i);
  const img = fileOrder(readNifti(new Uint8Array(buf)).volume);
  assertEquals(img.shape, [4, 3, 2]);
  assertClose(img.affine.slice(0, 3), srow, 0);
  // File order is x fastest: voxel (1, 0, 0) is file index 1; (0, 0, 1) is index 12.
  assert(img.data[1 * 6] === 1 && img.data[1] === 12);
});

Deno.test("readNifti() decodes big-endian files", () => {
  const dims = [4, 3, 2];
  const buf = new ArrayBuffer(352 + 24 * 2);
  const h = new DataView(buf);
  h.setInt32(0, 348, false);
  h.setInt16(40, 3, false);
  dims.forEach((d, i) => h.setInt16(42 + 2 * i, d, false));
  h.setInt16(70, 4, false); // int16
  h.setInt16(72, 16, false);
  [1, 1, 2, 3].forEach((z, i) => h.setFloat32(76 + 4 * i, z, false));
  h.setFloat32(108, 352, false);
  h.setFloat32(112, 2, false); // scl_slope
  h.setFloat32(116, -5, false); // scl_inter
  h.setInt16(254, 1, false);
  const srow = [[1, 0, 0, 1], [0, 2, 0, 2], [0, 0, 3, 3]];
  srow.forEach((r, i) => r.forEach((x, j) => h.setFloat32(280 + (i * 4 + j) * 4, x, false)));
  new Uint8Array(buf).set(new TextEncoder().encode("n+1\0"), 344);
  for (let i = 0; i < 24; i++) h.setInt16(352 + 2 * i, i - 10, false);
  const img = fileOrder(readNifti(new Uint8Array(buf)).volume);
  assertEquals(img.shape, [4, 3, 2]);
  assertClose(img.affine.slice(0, 3), srow, 0);
  // voxel (1, 2, 1) is file index 1 + 4 * 2 + 12 * 1 = 21 -> stored 11 -> 11 * 2 - 5
  assertEquals(img.data[(1 * 3 + 2) * 2 + 1], 17);
});

/** A NIfTI-1 file of `small()` with header fields changed by `edit`. */
function edited(edit: (h: DataView) => void, gzip = false): Uint8Array {
  const raw = writeNifti(small(), { gzip: false });
  edit(new DataView(raw.buffer, raw.byteOffset, raw.byteLength));
  return gzip ? gzipSync(raw) : raw;
}

Deno.test("readNifti() validates vox_offset as nibabel does: finite, whole, past the header", async () => {
  for (const value of [207, 176, 88, 0, -352, NaN, 352.5, Infinity]) {
    await assertRejects(
      () => readNifti(edited((h) => h.setFloat32(108, value, true))),
      new RegExp(`vox_offset = ${String(value).replace(".", "\\.")} is invalid`),
    );
  }
  await assertRejects(
    () => readNifti(edited((h) => h.setFloat32(108, 1e6, true))),
    /promises 120 bytes of voxels at offset 1000000/,
  );
  // A whole offset past 352 inside the file is fine (extensions sit there).
  const raw = writeNifti(small(), { gzip: false });
  const moved = new Uint8Array(raw.length + 16);
  moved.set(raw.subarray(0, 352));
  moved.set(raw.subarray(352), 368);
  new DataView(moved.buffer).setFloat32(108, 368, true);
  assertEquals(Array.from(fileOrder(readNifti(moved).volume).data), Array.from(small().data));
});

Deno.test("readNifti() rejects a NaN scl_inter with a valid slope, and dim[4] = 0 under dim[0] = 4", async () => {
  await assertRejects(
    () =>
      readNifti(edited((h) => {
        h.setFloat32(112, 2, true);
        h.setFloat32(116, NaN, true);
      })),
    /scl_inter = NaN with scl_slope = 2/,
  );
  await assertRejects(
    () =>
      readNifti(edited((h) => {
        h.setInt16(40, 4, true);
        h.setInt16(48, 0, true);
      })),
    /dim\[4\] = 0 \(dim\[0\] = 4\)/,
  );
});

Deno.test("readNifti() inflates only the declared voxels and reports trailing data", () => {
  const raw = writeNifti(small(), { gzip: false });
  // 32 MB of zeros after the voxels: a 32 KB file that would inflate to 32 MB.
  const bomb = new Uint8Array(raw.length + 32 * 2 ** 20);
  bomb.set(raw);
  const gz = gzipSync(bomb);
  assert(gz.length < 200_000, `${gz.length} bytes`);
  const img = readNifti(gz);
  assertEquals(Array.from(fileOrder(img.volume).data), Array.from(small().data));
  assert(/trailing data after the 472 bytes/.test(img.warnings?.[0] ?? ""), `${img.warnings}`);
  const head = inflateDeclared(gz, "gzip", 1000);
  assertEquals([head.data.length, head.trailing], [1000, true]);
  assertEquals(readNifti(writeNifti(small())).warnings, undefined);
});

Deno.test("readNifti() fails up front when the header declares more than the machine holds", async () => {
  const huge = edited((h) =>
    [32767, 32767, 32767].forEach((d, i) => h.setInt16(42 + 2 * i, d, true))
  );
  await assertRejects(() => readNifti(huge), /declares 32767x32767x32767 voxels, which need about/);
  await assertRejects(
    () => readNifti(gzipSync(huge)),
    /declares 32767x32767x32767 voxels, which need about/,
  );
});
