// Tests of the torch.save reader on files written here as PyTorch writes them.
import { BadInputError } from "../../../cache/errors.ts";
import { readTorchCheckpoint } from "../../../train/weights/torch_checkpoint.ts";
import { readZipDirectory } from "../../../train/weights/_zip_stored.ts";
import { assert, assertEquals, assertRejects } from "../../_helpers.ts";
import {
  Call,
  Float,
  OrderedDict,
  type PyObj,
  stateDict,
  Storage,
  storageOf,
  Tensor,
  tensorOf,
  torchSave,
  Tuple,
} from "../_torch_save.ts";

/** Pseudo-random float32 values (exactly representable). */
function values(n: number, seed = 1): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return (s / 2 ** 32 - 0.5) * 4;
  });
}

/** Bit-exact comparison of float32 arrays (NaN and -0 included). */
function assertBits(actual: Float32Array, expected: ArrayLike<number>, message: string) {
  assertEquals(actual.length, expected.length, `${message}: length`);
  const a = new Uint32Array(Float32Array.from(actual).buffer);
  const e = new Uint32Array(Float32Array.from(expected).buffer);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i]) {
      throw new Error(`${message}: element ${i} is ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

const w = values(12, 1), b = values(4, 2), d = values(6, 3);
const sd = () =>
  stateDict([
    ["swinViT.patch_embed.proj.weight", tensorOf(w, [4, 3], "F32", true)],
    ["swinViT.patch_embed.proj.bias", tensorOf(b, [4])],
    ["encoder1.layer.norm.weight", tensorOf(d, [2, 3], "F64")],
    [
      "swinViT.layers1.0.blocks.0.attn.relative_position_index",
      tensorOf([0, 5, -3, 7], [2, 2], "I64"),
    ],
  ]);

Deno.test("readTorchCheckpoint() reads a torch.save state dict bit-exact, with its archive name", () => {
  const bytes = torchSave(sd(), { archive: "VoCo_10k" });
  const entries = readZipDirectory(bytes);
  assertEquals([...entries.keys()], [
    "VoCo_10k/data.pkl",
    "VoCo_10k/.format_version",
    "VoCo_10k/.storage_alignment",
    "VoCo_10k/byteorder",
    "VoCo_10k/data/0",
    "VoCo_10k/data/1",
    "VoCo_10k/data/2",
    "VoCo_10k/data/3",
    "VoCo_10k/version",
    "VoCo_10k/.data/serialization_id",
  ]);
  for (const e of entries.values()) assertEquals(e.offset % 64, 0, `${e.name} aligned`);
  const { tensors, location, archive } = readTorchCheckpoint(bytes);
  assertEquals(archive, "VoCo_10k");
  assertEquals(location, []);
  assertEquals([...tensors.keys()], [
    "swinViT.patch_embed.proj.weight",
    "swinViT.patch_embed.proj.bias",
    "encoder1.layer.norm.weight",
    "swinViT.layers1.0.blocks.0.attn.relative_position_index",
  ]);
  const t = (k: string) => tensors.get(k)!;
  assertEquals(t("swinViT.patch_embed.proj.weight").shape, [4, 3]);
  assertEquals(t("swinViT.patch_embed.proj.weight").dtype, "F32");
  assertBits(t("swinViT.patch_embed.proj.weight").data, w, "parameter");
  assertBits(t("swinViT.patch_embed.proj.bias").data, b, "bias");
  assertEquals(t("encoder1.layer.norm.weight").dtype, "F64");
  assertBits(t("encoder1.layer.norm.weight").data, d, "float64");
  assertEquals([...t("swinViT.layers1.0.blocks.0.attn.relative_position_index").data], [
    0,
    5,
    -3,
    7,
  ]);
});

Deno.test("readTorchCheckpoint() converts float16 and bfloat16 storages exactly", () => {
  const half = [
    0,
    -0,
    1,
    -2,
    0.5,
    65504,
    -65504,
    2 ** -24,
    2 ** -14,
    3.140625,
    Infinity,
    -Infinity,
  ];
  for (let i = 0; i < 512; i++) half.push(i / 64 - 4);
  const bf = values(300, 7).map((v) => {
    const u = new Uint32Array(Float32Array.of(v).buffer);
    u[0] &= 0xffff0000;
    return new Float32Array(u.buffer)[0];
  });
  const bytes = torchSave(stateDict([
    ["h", tensorOf(half, [half.length], "F16")],
    ["b", tensorOf(bf, [3, 100], "BF16")],
  ]));
  const { tensors } = readTorchCheckpoint(bytes);
  assertEquals(tensors.get("h")!.dtype, "F16");
  assertBits(tensors.get("h")!.data, half, "float16");
  assertEquals(tensors.get("b")!.dtype, "BF16");
  assertEquals(tensors.get("b")!.shape, [3, 100]);
  assertBits(tensors.get("b")!.data, bf, "bfloat16");
});

Deno.test("readTorchCheckpoint() resolves strides, offsets and storages shared by tensors", () => {
  const base = values(24, 5);
  const shared = storageOf("F32", base);
  const half = storageOf("F16", Array.from({ length: 24 }, (_, i) => i - 12));
  // a = shared[0:12].view(3, 4); t = a.T (stride [1, 4]); c = shared[13:24:2] (offset 13, stride 2)
  const a = new Tensor(shared, 0, [3, 4], [4, 1]);
  const t = new Tensor(shared, 0, [4, 3], [1, 4]);
  const c = new Tensor(shared, 13, [2, 3], [6, 2]);
  const h = new Tensor(half, 2, [2, 2, 2], [1, 8, 4]); // non-contiguous float16
  const s = new Tensor(shared, 23, [], []); // a 0-d view at the end
  const { tensors } = readTorchCheckpoint(torchSave(stateDict([["a", a], ["t", t], ["c", c], [
    "h",
    h,
  ], ["s", s]])));
  const at = (i: number, j: number) => base[i * 4 + j];
  assertBits(tensors.get("a")!.data, base.slice(0, 12), "contiguous view");
  assertEquals(tensors.get("t")!.shape, [4, 3]);
  assertBits(
    tensors.get("t")!.data,
    [0, 1, 2, 3].flatMap((j) => [0, 1, 2].map((i) => at(i, j))),
    "transposed",
  );
  assertBits(
    tensors.get("c")!.data,
    [13, 15, 17, 19, 21, 23].map((i) => base[i]),
    "offset + stride",
  );
  const hv: number[] = [];
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 2; j++) for (let k = 0; k < 2; k++) hv.push(2 + i + 8 * j + 4 * k - 12);
  }
  assertBits(tensors.get("h")!.data, hv, "strided float16");
  assertEquals(tensors.get("s")!.shape, []);
  assertBits(tensors.get("s")!.data, [base[23]], "0-d");
  const bytes = torchSave(stateDict([["a", a], ["t", t]]));
  assertEquals([...readZipDirectory(bytes).keys()].filter((k) => k.includes("/data/")).length, 1);
});

Deno.test("readTorchCheckpoint() finds the state dict in nested checkpoints by the documented rule", () => {
  const other = stateDict([["x", tensorOf([1, 2], [2])]]);
  const cases: [PyObj, string[]][] = [
    [new Map<string, PyObj>([["epoch", 3], ["best_acc", new Float(0.5)], ["state_dict", sd()]]), [
      "state_dict",
    ]],
    [new Map<string, PyObj>([["model", sd()], ["optimizer", new Map([["lr", 1e-4]])]]), ["model"]],
    [new Map<string, PyObj>([["net", sd()], ["args", [1, "a", null, true, new Tuple([])]]]), [
      "net",
    ]],
    [new Map<string, PyObj>([["teacher", other], ["student", sd()]]), ["student"]],
    [new Map<string, PyObj>([["checkpoint", new Map([["state_dict", sd()]])]]), [
      "checkpoint",
      "state_dict",
    ]],
    [new OrderedDict([["epoch", 2 ** 40], ["model", sd()]]), ["model"]],
  ];
  for (const [obj, location] of cases) {
    const r = readTorchCheckpoint(torchSave(obj));
    assertEquals(r.location, location);
    assertBits(r.tensors.get("swinViT.patch_embed.proj.weight")!.data, w, location.join("."));
  }
  const both = torchSave(new Map<string, PyObj>([["teacher", other], ["student", sd()]]));
  assertEquals([...readTorchCheckpoint(both, { select: "teacher" }).tensors.keys()], ["x"]);
  assertRejects(() => readTorchCheckpoint(both, { select: "ema" }), /no state dict at "ema"/);
  const ambiguous = torchSave(new Map<string, PyObj>([["a", other], ["b", other], ["step", 7]]));
  assertRejects(
    () => readTorchCheckpoint(ambiguous),
    /No state dict of tensors found .* a \(dict\), b \(dict\), step \(number\)/,
  );
});

Deno.test("readTorchCheckpoint() reads zip64 archives and big-endian storages", () => {
  for (const options of [{ zip64: true }, { byteorder: "big" as const }]) {
    const { tensors } = readTorchCheckpoint(torchSave(sd(), options));
    assertBits(tensors.get("swinViT.patch_embed.proj.weight")!.data, w, JSON.stringify(options));
    assertBits(tensors.get("encoder1.layer.norm.weight")!.data, d, JSON.stringify(options));
    assertEquals(
      [...tensors.get("swinViT.layers1.0.blocks.0.attn.relative_position_index")!.data],
      [0, 5, -3, 7],
    );
  }
});

Deno.test("readTorchCheckpoint() refuses pickles that reference other globals", async () => {
  for (
    const obj of [
      new Call("os", "system", ["echo owned"]),
      new Map<string, PyObj>([["state_dict", sd()], ["x", new Call("builtins", "eval", ["1"])]]),
      new Map<string, PyObj>([
        ["state_dict", sd()],
        ["best_acc", new Call("numpy.core.multiarray", "scalar", [null, "x"])],
      ]),
    ]
  ) {
    const err = await assertRejects(
      () => readTorchCheckpoint(torchSave(obj)),
      /references (os\.system|builtins\.eval|numpy\.core\.multiarray\.scalar), which a state dict does not need; refusing it/,
    );
    assert(err instanceof BadInputError, `${err.name}: not bad input`);
  }
});

Deno.test("readTorchCheckpoint() names the problem of malformed files", async () => {
  const ok = torchSave(sd());
  await assertRejects(() => readTorchCheckpoint(Uint8Array.of(0x80, 2, 0x8a, 10, 0)), /Legacy/);
  await assertRejects(() => readTorchCheckpoint(new Uint8Array(64)), /Not a torch.save zip/);
  await assertRejects(() => readTorchCheckpoint(ok.subarray(0, ok.length - 30)), /zip/);
  // A tensor that reads past its storage.
  const tooLong = new Tensor(storageOf("F32", [1, 2, 3]), 1, [3], [1]);
  await assertRejects(
    () => readTorchCheckpoint(torchSave(stateDict([["w", tooLong]]))),
    /Tensor w: storage 0 holds 3 elements, the tensor reads element 3/,
  );
  // An opcode that would build an arbitrary instance (INST).
  const bad = ok.slice();
  const pkl = readZipDirectory(bad).get("archive/data.pkl")!;
  bad[pkl.offset + 2] = 0x69;
  await assertRejects(() => readTorchCheckpoint(bad), /Unsupported pickle opcode 0x69/);
  assert(new Storage("F32", new Uint8Array(8)).numel === 2);
});
