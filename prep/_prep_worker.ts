// Worker entry: processes the cases the main thread posts, one at a time.
import { type CaseJob, processCase } from "./process_case.ts";

interface WorkerScope {
  onmessage: ((e: MessageEvent<CaseJob>) => void) | null;
  postMessage(message: unknown): void;
}

const scope = self as unknown as WorkerScope;
scope.onmessage = async (e) => {
  const job = e.data;
  const t0 = performance.now();
  try {
    const outcome = await processCase(job);
    scope.postMessage({ ok: true, outcome, seconds: (performance.now() - t0) / 1000 });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    scope.postMessage({ ok: false, error: message, seconds: (performance.now() - t0) / 1000 });
  }
};
