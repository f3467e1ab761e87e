import type { EncodedFrame, PixelArray } from "./dicom_codecs.ts";

const WORKER_URL = new URL("./_decode_worker.ts", import.meta.url);

/** Frames posted to one worker before it answers: keeps it busy between messages. */
const IN_FLIGHT_PER_WORKER = 2;

interface Job {
  id: number;
  frame: EncodedFrame;
  resolve: (pixels: PixelArray) => void;
  reject: (error: Error) => void;
}

interface Lane {
  worker: Worker;
  jobs: Map<number, Job>;
}

/**
 * Decodes compressed DICOM frames in a pool of worker threads. The frames of a series are
 * independent, so a JPEG 2000 series (about 20 ms a 512² frame with OpenJPEG, native or
 * WebAssembly alike) decodes about `threads` times faster when cores are idle, e.g. when a
 * run has fewer cases than cores. Each worker loads the codecs it needs once. Call
 * {@linkcode FrameDecoderPool.close} when done: workers keep the process alive.
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

  /** Starts `threads` workers (at least 1). */
  constructor(threads: number) {
    this.#lanes = Array.from({ length: Math.max(1, Math.floor(threads)) }, () => {
      const lane: Lane = { worker: new Worker(WORKER_URL, { type: "module" }), jobs: new Map() };
      lane.worker.onmessage = (
        e: MessageEvent<{ id: number; pixels?: PixelArray; error?: string }>,
      ) => {
        const job = lane.jobs.get(e.data.id);
        if (!job) return;
        lane.jobs.delete(e.data.id);
        if (e.data.pixels) job.resolve(e.data.pixels);
        else job.reject(new Error(e.data.error ?? "decoder failed"));
        this.#pump();
      };
      lane.worker.onerror = (e) => {
        e.preventDefault();
        // A crashed worker fails what it held and everything still queued: the pool is done.
        const error = new Error(`frame decoder worker crashed: ${e.message}`);
        for (const job of [...lane.jobs.values(), ...this.#queue]) job.reject(error);
        lane.jobs.clear();
        this.#queue = [];
        this.close();
      };
      return lane;
    });
  }

  /** Number of worker threads. */
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

  /** Terminates the workers; frames still pending are rejected. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const error = new Error("frame decoder pool is closed");
    for (const lane of this.#lanes) {
      lane.worker.terminate();
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
      lane.jobs.set(job.id, job);
      // A view would clone its whole buffer (the file): send an own copy, transferred.
      const bytes = job.frame.bytes.slice();
      lane.worker.postMessage({ id: job.id, frame: { ...job.frame, bytes } }, [bytes.buffer]);
    }
  }
}
