// Tests of the one exit-code rule every task follows (cli/run.ts).
import { EXIT, exitCodeOf } from "../../cli/run.ts";
import {
  BadInputError,
  DamagedCacheError,
  NotACacheError,
  UnavailableError,
  UsageError,
} from "../../cache/errors.ts";
import { assertEquals } from "../_helpers.ts";
import { denoTask } from "../tasks/_run.ts";

Deno.test("exitCodeOf(): nothing done 2, items or damage 1, a bug 3", () => {
  assertEquals(
    [
      new UsageError("x"),
      new BadInputError("x"),
      new NotACacheError("x"),
      new DamagedCacheError("x"),
      new UnavailableError("x"),
      new Error("context", { cause: new Deno.errors.NotFound("x") }),
      new Error("context", { cause: new BadInputError("x") }),
      new Deno.errors.NotFound("x"),
      new Deno.errors.PermissionDenied("x"),
      new RangeError("x"),
      new TypeError("x"),
      "a string",
    ].map(exitCodeOf),
    [2, 2, 2, 1, 1, 1, 2, 1, 1, 3, 3, 3],
  );
  assertEquals([EXIT.ok, EXIT.interrupted], [0, 130]);
});

Deno.test("a missing input is exit 2 in every task that reads one", async () => {
  for (
    const args of [
      ["cache", "inspect", "no-such.zarr"],
      ["cache", "verify", "no-such.zarr"],
      ["pretrain", "export", "no-such-run", "--out", "x.safetensors"],
      ["model", "check", "--weights", "no-such.safetensors", "--io", "no-such.safetensors"],
    ]
  ) {
    const r = await denoTask(args);
    assertEquals(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
  }
});
