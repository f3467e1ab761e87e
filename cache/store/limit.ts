// Bounded concurrency for many small requests: a map over items, and a gate that lets at
// most a few tasks run at once.

/** Runs `fn` over `items` with at most `limit` at once, results in order. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (t: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, run));
  return out;
}

/** A gate: {@linkcode Gate.run} starts a task when fewer than the limit are running. */
export interface Gate {
  /** Runs `task` once a slot is free, in the order asked. */
  run<R>(task: () => Promise<R>): Promise<R>;
}

/** A {@linkcode Gate} letting at most `limit` tasks run at once. */
export function gate(limit: number): Gate {
  let running = 0;
  const waiting: (() => void)[] = [];
  return {
    async run<R>(task: () => Promise<R>): Promise<R> {
      // A finishing task hands its slot straight to the next waiting one.
      if (running >= Math.max(1, limit)) await new Promise<void>((r) => waiting.push(r));
      else running++;
      try {
        return await task();
      } finally {
        const next = waiting.shift();
        if (next) next();
        else running--;
      }
    },
  };
}
