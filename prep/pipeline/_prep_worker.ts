// Worker entry: processes the cases the main thread posts, one at a time. A first message
// may lend it ports to frame-decoding workers that the main thread started.
import { type CaseJob, processCase } from "./process_case.ts";
import { FrameDecoderPool } from "../formats/dicom/frame_pool.ts";

interface WorkerScope {
  onmessage: ((e: MessageEvent<CaseJob | { decodePorts: MessagePort[] }>) => void) | null;
  postMessage(message: unknown): void;
}

const scope = self as unknown as WorkerScope;

// Decodes the compressed DICOM frames of all this worker's cases; the workers behind it
// belong to the main thread (see DecodeWorkers).
let pool: FrameDecoderPool | undefined;

scope.onmessage = async (e) => {
  if ("decodePorts" in e.data) {
    pool?.close();
    pool = new FrameDecoderPool(e.data.decodePorts);
    return;
  }
  const job = e.data;
  const t0 = performance.now();
  try {
    const outcome = await processCase(job, { decodePool: pool });
    scope.postMessage({ ok: true, outcome, seconds: (performance.now() - t0) / 1000 });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    scope.postMessage({ ok: false, error: message, seconds: (performance.now() - t0) / 1000 });
  }
};
