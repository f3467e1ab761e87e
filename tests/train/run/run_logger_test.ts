// Tests of the run logger: TensorBoard scalars per step, loss.svg every N steps, resumes
// found from earlier event files and marked, a failed write reported and survived.
import { resumesOf, runLogger, tensorboardTag } from "../../../train/run/run_logger.ts";
import { decodeEvent, readScalars, readTfRecords } from "../../../train/run/tfevents.ts";
import { assert, assertEquals, tempDir } from "../../_helpers.ts";

const row = (step: number) => ({
  step,
  loss: 3 - step * 0.01,
  intra: 1,
  inter: 1,
  reg: 0.2,
  lr: 1e-4,
  samples_per_s: 2,
  seconds: 1,
});

Deno.test("runLogger() appends each step's scalars to an event file and redraws loss.svg every N steps", async () => {
  await using dir = await tempDir();
  const log = await runLogger(dir.path, { plotEvery: 3, name: "tiny" });
  assert(log.eventFile?.includes("events.out.tfevents."), "an event file in the run folder");
  for (let s = 1; s <= 2; s++) await log.onStep(row(s));
  const noPlot = await Deno.stat(`${dir.path}/loss.svg`).then(() => true, () => false);
  assert(!noPlot, "no plot before the third step");
  await log.onStep(row(3));
  const svg = await Deno.readTextFile(`${dir.path}/loss.svg`);
  assert(svg.includes("tiny · VoCo pre-training"), "the run's name");
  assert(svg.includes("3 rows, last step 3"), "the plot has the three steps");
  const scalars = readScalars(await Deno.readFile(log.eventFile!));
  assertEquals(scalars.filter((s) => s.step === 2).map((s) => s.tag), [
    "loss/loss",
    "loss/intra",
    "loss/inter",
    "loss/reg",
    "train/lr",
    "train/samples_per_s",
    "train/seconds",
  ]);
  assertEquals(
    scalars.find((s) => s.step === 3 && s.tag === "loss/loss")!.value,
    Math.fround(2.97),
  );
  assertEquals(tensorboardTag("loss_extra"), "loss/loss_extra");
  assertEquals(tensorboardTag("agreement"), "train/agreement");
});

Deno.test("runLogger() marks where a run resumed and tells TensorBoard to drop the redone steps", async () => {
  await using dir = await tempDir();
  const first = await runLogger(dir.path, { plotEvery: 0 });
  for (let s = 1; s <= 7; s++) await first.onStep(row(s)); // killed after 7, checkpoint at 5
  await Deno.writeTextFile(
    `${dir.path}/metrics.jsonl`,
    [1, 2, 3, 4, 5].map((s) => JSON.stringify(row(s))).join("\n") + "\n",
  );
  assertEquals(await resumesOf(dir.path), [], "a fresh run starts at step 1");
  const second = await runLogger(dir.path, { plotEvery: 1, startStep: 5 });
  assertEquals(second.resumedAt, [5]);
  const events = readTfRecords(await Deno.readFile(second.eventFile!)).map(decodeEvent);
  assertEquals(
    [events[1].sessionStatus, events[1].step],
    [1, 6],
    "a START at the first redone step",
  );
  await second.onStep(row(6));
  const svg = await Deno.readTextFile(`${dir.path}/loss.svg`);
  assert(
    svg.includes("6 rows, last step 6"),
    "the earlier rows from metrics.jsonl, then the new one",
  );
  assert(svg.includes("resumed at step 5"), "the marker");
  // A third process, resumed at 6: both resumes are found (the second from its event file).
  const third = await runLogger(dir.path, { startStep: 6, rows: [] });
  assertEquals(third.resumedAt, [5, 6]);
});

Deno.test("runLogger() reports a failed write and goes on", async () => {
  await using dir = await tempDir();
  const errors: string[] = [];
  const log = await runLogger(dir.path, { plotEvery: 1, onError: (e) => errors.push(e.message) });
  await Deno.remove(log.eventFile!);
  await Deno.mkdir(log.eventFile!); // appending to a folder fails
  await Deno.mkdir(`${dir.path}/loss.svg`); // so does replacing the plot by a file
  await log.onStep(row(1));
  await log.flush();
  assertEquals(errors.length, 3, errors.join("; "));
});
