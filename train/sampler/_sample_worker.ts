// Worker entry of the batch loader: builds the samples the main thread posts (reading
// only the region each needs from the cache) and sends their crops back transferred.
import { buildSample } from "./voco_sample.ts";
import { CaseOpener } from "./_open.ts";
import { Rng } from "../rng.ts";
import { errorKind } from "../../cache/errors.ts";
import type { SampleJob, SampleReply } from "./loader.ts";

interface WorkerScope {
  onmessage: ((e: MessageEvent<SampleJob>) => void) | null;
  postMessage(message: unknown, transfer?: Transferable[]): void;
}

const scope = self as unknown as WorkerScope;
let opener: CaseOpener | undefined;

scope.onmessage = async (e) => {
  const job = e.data;
  let reply: SampleReply;
  try {
    opener ??= new CaseOpener(job.reader);
    const { shape, readBox } = await opener.open(job.cache, job.path);
    const s = await buildSample(shape, readBox, job.spec, new Rng(job.rng));
    reply = { id: job.id, crops: s.crops, labels: s.labels };
    scope.postMessage(reply, [s.crops.buffer as ArrayBuffer, s.labels.buffer as ArrayBuffer]);
  } catch (err) {
    reply = { id: job.id, error: (err as Error).message, kind: errorKind(err) };
    scope.postMessage(reply);
  }
};
