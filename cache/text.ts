// Text for messages, shared by every folder (so it lives in the lowest): the "did you
// mean" of a typo, and human-readable sizes and durations.

/**
 * Edit distance of two strings: insertions, deletions, substitutions and swaps of two
 * neighbours (`chset` is one edit from `chest`), each counting one.
 */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => {
    const row = new Array<number>(b.length + 1).fill(0);
    row[0] = i;
    return row;
  });
  for (let j = 0; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The candidate closest to `word` when it is close enough to be a typo (one edit per
 * three letters, at least one; or a unique prefix), else `undefined`.
 */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined, bestD = Infinity;
  const list = [...candidates];
  for (const c of list) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  const allowed = Math.max(1, Math.floor(word.length / 3));
  if (best !== undefined && bestD <= allowed && bestD < word.length) return best;
  const prefixed = list.filter((c) => word.length >= 2 && c.startsWith(word));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

/** Human-readable byte count (`12.3 MB`). */
export function formatBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let u = 0;
  while (n >= 1000 && u < units.length - 1) {
    n /= 1000;
    u++;
  }
  return `${n.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

/** Human-readable duration (`1m05s`). */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s - m * 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

/**
 * The values `word` may have been meant as: those that contain it (`gpu`: `webgpu`,
 * `tensorflow-gpu`), then the closest one when it is a typo ({@linkcode closest}); at most
 * three.
 */
export function suggestions(word: string, candidates: readonly string[]): string[] {
  const w = word.toLowerCase();
  const inside = w.length >= 2 ? candidates.filter((c) => c.toLowerCase().includes(w)) : [];
  const near = closest(word, candidates);
  const all = [...new Set([...(inside.length <= 3 ? inside : []), ...(near ? [near] : [])])];
  return all.slice(0, 3);
}

/** `a`, `a or b`, `a, b or c`. */
export function orList(words: readonly string[]): string {
  return words.length < 2 ? words.join("") : `${words.slice(0, -1).join(", ")} or ${words.at(-1)}`;
}
