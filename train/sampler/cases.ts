// The cases a pre-training run draws from: one or more caches (folders or URLs) listed once, filtered by
// dataset, checked against the recipe, repeated per dataset as the large-scale recipe
// does, and visited in a seeded shuffled order, every case once per epoch.
import { CacheReader, type CacheReaderOptions } from "../../cache/read/cache_reader.ts";
import { BadInputError } from "../../cache/errors.ts";
import { permutation, streamRng } from "../rng.ts";

/** One case a run can sample. */
export interface TrainingCase {
  /** The cache folder holding it. */
  cache: string;
  /** Its path in the cache store, `/<dataset>/<name>`. */
  path: `/${string}`;
  /** Dataset group name. */
  dataset: string;
  /** Case name. */
  name: string;
  /** Array shape `[x, y, z]`. */
  shape: [number, number, number];
  /** The case's fingerprint (recorded in a run's config). */
  fingerprint: string;
}

/** Options of {@linkcode listTrainingCases}. */
export interface ListOptions {
  /** Keep only these datasets (all when absent). */
  datasets?: readonly string[];
  /** The recipe every case must have been made with (`voco-v2`, `voco-v1`). */
  recipe: string;
  /** Options of the cache reader (S3 endpoint, credentials, ...). */
  reader?: CacheReaderOptions;
  /** Times each case of a dataset appears per epoch (`{ btcv: 8 }`); 1 when absent. */
  repeat?: Readonly<Record<string, number>>;
}

/** What {@linkcode listTrainingCases} found. */
export interface CaseList {
  /** Every case, repeated as asked, in cache, dataset and name order. */
  cases: TrainingCase[];
  /** Cases per dataset, before repeats. */
  perDataset: Record<string, number>;
  /** Entries that could not be read (skipped, with the reason). */
  skipped: { path: string; reason: string }[];
}

/**
 * Lists the cases of `caches`. Throws a {@linkcode BadInputError} when a dataset asked for is in no
 * cache, when a case was made with another recipe than `recipe` (the name before any
 * `+overrides` suffix must match), or when nothing is left.
 */
export async function listTrainingCases(
  caches: readonly string[],
  options: ListOptions,
): Promise<CaseList> {
  const cases: TrainingCase[] = [];
  const perDataset: Record<string, number> = {};
  const skipped: CaseList["skipped"] = [];
  const seen = new Set<string>();
  for (const cache of caches) {
    const reader = await CacheReader.open(cache, options.reader);
    for (const entry of await reader.list()) {
      seen.add(entry.dataset);
      if (options.datasets && !options.datasets.includes(entry.dataset)) continue;
      if (entry.error || !entry.shape) {
        skipped.push({ path: `${cache}${entry.path}`, reason: entry.error ?? "no shape" });
        continue;
      }
      const recipe = entry.attributes?.recipe?.name ?? "?";
      if (recipe.split("+")[0] !== options.recipe) {
        throw new BadInputError(
          `${cache}${entry.path} was made with recipe "${recipe}", but this run trains ` +
            `${options.recipe}: prepare the cache with "deno task prep --recipe ${options.recipe}"` +
            ` or pass --recipe ${recipe.split("+")[0]}`,
        );
      }
      const times = options.repeat?.[entry.dataset] ?? 1;
      perDataset[entry.dataset] = (perDataset[entry.dataset] ?? 0) + 1;
      const c: TrainingCase = {
        cache,
        path: entry.path,
        dataset: entry.dataset,
        name: entry.name,
        shape: entry.shape as [number, number, number],
        fingerprint: String(entry.attributes?.fingerprint ?? ""),
      };
      for (let r = 0; r < times; r++) cases.push(c);
    }
  }
  for (const d of options.datasets ?? []) {
    if (!seen.has(d)) {
      throw new BadInputError(
        `No dataset "${d}" in ${caches.join(", ")}; there are: ${[...seen].join(", ") || "none"}`,
      );
    }
  }
  for (const d of Object.keys(options.repeat ?? {})) {
    if (!(d in perDataset)) {
      throw new BadInputError(`--repeat names dataset "${d}", which has no cases here`);
    }
  }
  if (cases.length === 0) throw new BadInputError(`No cases to train on in ${caches.join(", ")}`);
  return { cases, perDataset, skipped };
}

/**
 * The case of global sample index `g` (epoch `floor(g / n)`, its `g mod n`-th case in
 * that epoch's seeded shuffle).
 */
export class EpochOrder {
  readonly #n: number;
  readonly #seed: number;
  #epoch = -1;
  #order: number[] = [];

  /** An order over `n` cases for a run's `seed`. */
  constructor(n: number, seed: number) {
    this.#n = n;
    this.#seed = seed;
  }

  /** Index of the case sample `g` reads. */
  caseAt(g: number): number {
    const epoch = Math.floor(g / this.#n);
    if (epoch !== this.#epoch) {
      this.#order = permutation(this.#n, streamRng(this.#seed, 0x0e90c4, epoch));
      this.#epoch = epoch;
    }
    return this.#order[g % this.#n];
  }
}
