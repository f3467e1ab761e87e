// Worker pools that decode compressed DICOM frames in parallel, with a watchdog so a
// stuck decoder fails its case instead of hanging the run.
import type { EncodedFrame, PixelArray } from "./dicom_codecs.ts";

const WORKER_URL = new URL("./_decode_worker.ts", import.meta.url);

/** Frames posted to one decoder before it answers: keeps it busy between messages. */
const IN_FLIGHT_PER_WORKER = 2;

/**
 * How long one frame may take to decode before its decoder is taken for hung (a 512²
 * frame decodes in 5-25 ms): `baseMs` plus `msPerMegapixel` per million pixels, so
 * seconds, not minutes, for any CT frame. A pool whose decoder overruns fails, so that
 * its case fails instead of waiting forever; a prep worker decoding in its own thread is
 * terminated by the run (see `DecodeWatchdog`). Mutable, so tests can shorten it.
 */
export const DECODER_LIMITS = { baseMs: 10_000, msPerMegapixel: 10_000 };

/** The time a frame of `info`'s size may take to decode (see {@linkcode DECODER_LIMITS}). */
export function decodeBudgetMs(
  info: { rows: number; columns: number },
  limits: { baseMs: number; msPerMegapixel: number } = DECODER_LIMITS,
): number {
  return limits.baseMs + (info.rows * info.columns / 1e6) * limits.msPerMegapixel;
}

interface Job {
  id: number;
  frame: EncodedFrame;
  resolve: (pixels: PixelArray) => void;
  reject: (error: Error) => void;
}

/** A decoder the pool talks to: a worker of its own, or a port to someone else's. */
interface Lane {
  target: Worker | MessagePort;
  jobs: Map<number, Job>;
  /** When the lane last posted to an idle decoder or heard from it. */
  since: number;
}

type Reply = MessageEvent<{ id: number; pixels?: PixelArray; error?: string }>;

/** Starts a frame-decoding worker (see `_decode_worker.ts`). */
function decodeWorker(): Worker {
  return new Worker(WORKER_URL, { type: "module" });
}

/**
 * Decodes compressed DICOM frames in worker threads. The frames of a series are
 * independent, so a JPEG 2000 series (about 20 ms a 512² frame with OpenJPEG, native or
 * WebAssembly alike) decodes about `threads` times faster when cores are idle, e.g. when a
 * run has fewer cases than cores. Each worker loads the codecs it needs once.
 *
 * Given a number, the pool starts that many workers of its own; given ports (from
 * {@linkcode DecodeWorkers.connect}), it uses workers that another thread started: a
 * prep worker does so, because a worker started from a worker takes about a second to
 * answer its first message in Deno 2.9. Call {@linkcode FrameDecoderPool.close} when done:
 * workers keep the process alive.
 *
 * @example
 * ```ts
 * const pool = new FrameDecoderPool(4);
 * try {
 *   const pixels = await Promise.all(frames.map((f) => pool.decode(f)));
 * } finally {
 *   pool.close();
 * }
 * ```
 */
export class FrameDecoderPool {
  #lanes: Lane[];
  #queue: Job[] = [];
  #nextId = 0;
  #closed = false;
  #watchdog: ReturnType<typeof setInterval>;

  /** Starts `threads` workers (at least 1), or uses the decoders behind `ports`. */
  constructor(threads: number | readonly MessagePort[]) {
    const targets = typeof threads === "number"
      ? Array.from({ length: Math.max(1, Math.floor(threads)) }, decodeWorker)
      : [...threads];
    if (targets.length === 0) throw new RangeError("A frame decoder pool needs a decoder");
    this.#lanes = targets.map((target) => {
      const lane: Lane = { target, jobs: new Map(), since: performance.now() };
      target.onmessage = (e: Reply) => {
        lane.since = performance.now();
        const job = lane.jobs.get(e.data.id);
        if (!job) return;
        lane.jobs.delete(e.data.id);
        if (e.data.pixels) job.resolve(e.data.pixels);
        else job.reject(new Error(e.data.error ?? "decoder failed"));
        this.#pump();
      };
      if (target instanceof Worker) {
        target.onerror = (e) => {
          e.preventDefault();
          this.#fail(new Error(`frame decoder worker crashed: ${e.message}`));
        };
      }
      return lane;
    });
    // A decoder that died (a port's worker gives no error event here) would leave its
    // frames waiting forever.
    this.#watchdog = setInterval(() => {
      const now = performance.now();
      for (const l of this.#lanes) {
        if (l.jobs.size === 0) continue;
        // The frames in flight are decoded one after the other: each has its budget.
        let limit = 0;
        for (const job of l.jobs.values()) limit += decodeBudgetMs(job.frame.info);
        if (now - l.since > limit) {
          this.#fail(
            new Error(
              `a frame decoder did not answer in ${Number((limit / 1000).toFixed(1))} s ` +
                `(a damaged frame can hang a decoder)`,
            ),
          );
          return;
        }
      }
    }, Math.max(10, Math.min(1000, DECODER_LIMITS.baseMs / 4)));
    Deno.unrefTimer(this.#watchdog);
  }

  /** Whether the pool was closed or failed (it decodes nothing more). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Number of decoders. */
  get threads(): number {
    return this.#lanes.length;
  }

  /** Decodes one frame in a worker; rejects with the codec's message when it fails. */
  decode(frame: EncodedFrame): Promise<PixelArray> {
    if (this.#closed) return Promise.reject(new Error("frame decoder pool is closed"));
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: this.#nextId++, frame, resolve, reject });
      this.#pump();
    });
  }

  /** Stops the pool (terminating its own workers, closing its ports); pending frames fail. */
  close(): void {
    if (this.#closed) return;
    this.#fail(new Error("frame decoder pool is closed"));
  }

  #fail(error: Error): void {
    this.#closed = true;
    clearInterval(this.#watchdog);
    for (const lane of this.#lanes) {
      if (lane.target instanceof Worker) lane.target.terminate();
      else lane.target.close();
      for (const job of lane.jobs.values()) job.reject(error);
      lane.jobs.clear();
    }
    for (const job of this.#queue) job.reject(error);
    this.#queue = [];
  }

  #pump(): void {
    while (this.#queue.length && !this.#closed) {
      let lane = this.#lanes[0];
      for (const l of this.#lanes) if (l.jobs.size < lane.jobs.size) lane = l;
      if (lane.jobs.size >= IN_FLIGHT_PER_WORKER) return;
      const job = this.#queue.shift()!;
      if (lane.jobs.size === 0) lane.since = performance.now();
      lane.jobs.set(job.id, job);
      // A view would clone its whole buffer (the file): send an own copy, transferred.
      const bytes = job.frame.bytes.slice();
      lane.target.postMessage({ id: job.id, frame: { ...job.frame, bytes } }, [bytes.buffer]);
    }
  }
}

/**
 * Frame-decoding workers started by one thread (the main thread of a prep run) and lent
 * to others through message ports, so that a prep worker decodes in parallel without
 * starting workers itself (see {@linkcode FrameDecoderPool}).
 */
export class DecodeWorkers {
  #workers: Worker[];

  /** Starts `count` decoding workers. */
  constructor(count: number) {
    this.#workers = Array.from({ length: Math.max(1, Math.floor(count)) }, () => {
      const w = decodeWorker();
      // A crashed decoder must not take the run down; the pools that used it time out.
      w.onerror = (e) => e.preventDefault();
      return w;
    });
  }

  /** Number of workers. */
  get count(): number {
    return this.#workers.length;
  }

  /**
   * Ports to the workers `first .. first + n - 1` (modulo their count), one new channel
   * each: transfer them to another thread and make a {@linkcode FrameDecoderPool} there.
   */
  connect(first = 0, n: number = this.#workers.length): MessagePort[] {
    return Array.from({ length: n }, (_, k) => {
      const { port1, port2 } = new MessageChannel();
      this.#workers[(first + k) % this.#workers.length].postMessage({ port: port2 }, [port2]);
      return port1;
    });
  }

  /**
   * Replaces the workers `first .. first + n - 1` (modulo their count) with new ones: a
   * pool that timed out may have left one of them in an endless decoding loop.
   */
  restart(first: number, n: number): void {
    for (let k = 0; k < n; k++) {
      const i = (first + k) % this.#workers.length;
      this.#workers[i].terminate();
      const w = decodeWorker();
      w.onerror = (e) => e.preventDefault();
      this.#workers[i] = w;
    }
  }

  /** Terminates the workers. */
  close(): void {
    for (const w of this.#workers) w.terminate();
  }
}
