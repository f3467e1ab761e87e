// Worker entry: processes the cases the main thread posts, one at a time. A first message
// may lend it ports to frame-decoding workers that the main thread started. Before each
// frame it decodes in its own thread it tells the main thread how long that may take, so
// that a hung decoder (a busy WebAssembly loop) gets the worker terminated.
import { type CaseJob, processCase } from "./process_case.ts";
import { DECODER_LIMITS, FrameDecoderPool } from "../formats/dicom/frame_pool.ts";

interface WorkerScope {
  onmessage: ((e: MessageEvent<CaseJob | { decodePorts: MessagePort[] }>) => void) | null;
  postMessage(message: unknown): void;
}

const scope = self as unknown as WorkerScope;

// Decodes the compressed DICOM frames of all this worker's cases; the workers behind it
// belong to the main thread (see DecodeWorkers).
let pool: FrameDecoderPool | undefined;

const watchdog = (what: string, budgetMs: number) => {
  scope.postMessage({ type: "arm", what, ms: budgetMs });
  return () => scope.postMessage({ type: "disarm" });
};

scope.onmessage = async (e) => {
  if ("decodePorts" in e.data) {
    pool?.close();
    pool = new FrameDecoderPool(e.data.decodePorts);
    return;
  }
  const job = e.data;
  if (job.decodeLimits) Object.assign(DECODER_LIMITS, job.decodeLimits);
  const t0 = performance.now();
  const hadPool = pool !== undefined && !pool.closed;
  try {
    const outcome = await processCase(job, { decodePool: pool, watchdog });
    scope.postMessage({
      type: "done",
      ok: true,
      outcome,
      seconds: (performance.now() - t0) / 1000,
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    scope.postMessage({
      type: "done",
      ok: false,
      error: message,
      seconds: (performance.now() - t0) / 1000,
      // A lent pool that failed in this case may have a hung decoder behind it.
      restart: hadPool && pool!.closed,
    });
  }
};
