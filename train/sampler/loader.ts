// The batch loader of a pre-training run: samples built in Deno Workers (or inline), in
// a fixed order, with a bounded prefetch queue so that the model rarely waits; a case
// that fails to read is reported and replaced by the next one. Every random choice of a
// sample comes from (seed, sample index), so a resumed run draws the same samples.
import type { TrainingCase } from "./cases.ts";
import { EpochOrder } from "./cases.ts";
import { buildSample, type SampleSpec } from "./voco_sample.ts";
import { CaseOpener } from "./_open.ts";
import type { CacheReaderOptions } from "../../cache/read/cache_reader.ts";
import { Rng, streamRng } from "../rng.ts";
import { type ErrorKind, errorKind, VocoError } from "../../cache/errors.ts";

/** A job posted to a sample worker. */
export interface SampleJob {
  /** Request id. */
  id: number;
  /** Cache folder. */
  cache: string;
  /** Case path in the cache. */
  path: `/${string}`;
  /** How to cut the sample. */
  spec: SampleSpec;
  /** The sample's RNG state. */
  rng: number[];
  /** How the worker's cache reader reaches the cache (S3 endpoint, anonymous). */
  reader: CacheReaderOptions;
}

/** A worker's answer. */
export type SampleReply =
  | { id: number; crops: Float32Array; labels: Float32Array; error?: undefined }
  | { id: number; error: string; kind?: ErrorKind };

/** One training batch: the model's input rows and the labels. */
export interface Batch {
  /** `[B * S + B * K, roi, roi, roi]` voxels: the random crops volume by volume, then the bases. */
  inputs: Float32Array;
  /** `[B, S, K]` overlap labels. */
  labels: Float32Array;
  /** Rows of `inputs`. */
  rows: number;
  /** The cases of the batch, in order. */
  cases: string[];
}

/** A case that failed to give a sample. */
export interface FailedSample {
  /** `cache/dataset/name`. */
  case: string;
  /** Why. */
  reason: string;
}

/** Options of {@linkcode BatchLoader}. */
export interface LoaderOptions {
  /** Volumes per batch. */
  batchSize: number;
  /** How samples are cut. */
  spec: SampleSpec;
  /** The run's seed. */
  seed: number;
  /** Global index of the first sample to draw (a resumed run's position). @default {0} */
  start?: number;
  /** Sample workers; 0 builds samples on the calling thread. @default {2} */
  workers?: number;
  /** Batches prepared ahead. @default {2} */
  prefetch?: number;
  /** Called for each case that fails (it is skipped). */
  onFailure?: (f: FailedSample) => void;
  /** Options of the cache readers (S3 endpoint, anonymous), plain data. @default {{}} */
  reader?: CacheReaderOptions;
}

interface Pending {
  index: number;
  c: TrainingCase;
  result: Promise<SampleReply>;
}

/**
 * The generator of global sample `index` of a run with `seed`: every random choice of that
 * sample (region, crops, augmentations) comes from it, whichever worker builds it.
 */
export function sampleRng(seed: number, index: number): Rng {
  return streamRng(seed, 0x5a3b1e, index);
}

/** Draws batches in order over the cases of a run. */
export class BatchLoader {
  readonly #cases: readonly TrainingCase[];
  readonly #o: Required<Omit<LoaderOptions, "onFailure">> & Pick<LoaderOptions, "onFailure">;
  readonly #order: EpochOrder;
  readonly #queue: Pending[] = [];
  readonly #workers: Worker[] = [];
  readonly #waiting = new Map<number, (r: SampleReply) => void>();
  readonly #opener: CaseOpener;
  #next: number;
  #consumed: number;
  #nextId = 0;
  #rr = 0;
  /** Cases that failed so far. */
  readonly failures: FailedSample[] = [];

  /** A loader over `cases` (a run's whole list, repeats included). */
  constructor(cases: readonly TrainingCase[], options: LoaderOptions) {
    this.#cases = cases;
    this.#o = { start: 0, workers: 2, prefetch: 2, reader: {}, ...options };
    this.#opener = new CaseOpener(this.#o.reader);
    this.#order = new EpochOrder(cases.length, options.seed);
    this.#next = this.#consumed = this.#o.start;
    for (let w = 0; w < this.#o.workers; w++) {
      const worker = new Worker(new URL("./_sample_worker.ts", import.meta.url), {
        type: "module",
      });
      worker.onmessage = (e: MessageEvent<SampleReply>) => {
        this.#waiting.get(e.data.id)?.(e.data);
        this.#waiting.delete(e.data.id);
      };
      worker.onerror = (e) => {
        e.preventDefault();
        for (const [id, resolve] of this.#waiting) {
          resolve({ id, error: `sample worker crashed: ${e.message}` });
        }
        this.#waiting.clear();
      };
      this.#workers.push(worker);
    }
  }

  /** Global index of the next sample a batch will take (save it to resume). */
  get position(): number {
    return this.#consumed;
  }

  #request(index: number): Pending {
    const c = this.#cases[this.#order.caseAt(index)];
    const rng = sampleRng(this.#o.seed, index).state();
    const spec = this.#o.spec;
    let result: Promise<SampleReply>;
    if (this.#workers.length === 0) {
      const id = this.#nextId++;
      result = (async () => {
        const { shape, readBox } = await this.#opener.open(c.cache, c.path);
        const s = await buildSample(shape, readBox, spec, new Rng(rng));
        return { id, crops: s.crops, labels: s.labels };
      })().catch((e) => ({ id, error: (e as Error).message, kind: errorKind(e) }));
    } else {
      const id = this.#nextId++;
      const worker = this.#workers[this.#rr++ % this.#workers.length];
      result = new Promise((resolve) => this.#waiting.set(id, resolve));
      const job: SampleJob = {
        id,
        cache: c.cache,
        path: c.path,
        spec,
        rng,
        reader: this.#o.reader,
      };
      worker.postMessage(job);
    }
    return { index, c, result };
  }

  #fill(): void {
    const want = this.#o.batchSize * (this.#o.prefetch + 1);
    while (this.#queue.length < want) this.#queue.push(this.#request(this.#next++));
  }

  /** The next batch; failed cases are reported and replaced by later ones. */
  async next(): Promise<Batch> {
    const { batchSize: b, spec } = this.#o;
    const got: { c: TrainingCase; crops: Float32Array; labels: Float32Array }[] = [];
    let failuresInARow = 0;
    while (got.length < b) {
      this.#fill();
      const p = this.#queue.shift()!;
      const r = await p.result;
      this.#consumed = p.index + 1;
      if (r.error !== undefined) {
        const f = { case: `${p.c.cache}${p.c.path}`, reason: r.error };
        const kind = r.kind;
        this.failures.push(f);
        this.#o.onFailure?.(f);
        if (++failuresInARow >= Math.max(8, this.#cases.length)) {
          // The last failure's kind (a damaged cache, an unreachable server) decides the
          // exit code; an untagged one stays a bug.
          const message =
            `${failuresInARow} samples in a row failed; the last: ${f.case}: ${f.reason}`;
          throw kind ? new VocoError(kind, message) : new Error(message);
        }
        continue;
      }
      failuresInARow = 0;
      got.push({ c: p.c, crops: r.crops, labels: r.labels });
    }
    this.#fill();
    const n = spec.roi ** 3, k = spec.grid * spec.grid, s = spec.crops;
    const inputs = new Float32Array(b * (s + k) * n);
    const labels = new Float32Array(b * s * k);
    got.forEach((g, i) => {
      // Random crops of volume i go to rows i*S.., its bases to rows B*S + i*K...
      inputs.set(g.crops.subarray(0, s * n), i * s * n);
      inputs.set(g.crops.subarray(s * n), (b * s + i * k) * n);
      labels.set(g.labels, i * s * k);
    });
    return {
      inputs,
      labels,
      rows: b * (s + k),
      cases: got.map((g) => `${g.c.dataset}/${g.c.name}`),
    };
  }

  /** Stops the workers. */
  close(): void {
    for (const w of this.#workers) w.terminate();
    this.#workers.length = 0;
  }
}
