// Index arithmetic of shifted-window attention, computed once per grid in plain JS:
// MONAI pads the grid to window multiples (zeros after the norm), rolls it by -shift,
// partitions it into windows, and undoes all three afterwards. Here each round trip is
// one gather: `forward` maps every window token to its source row (or to an extra zero
// row for padding), `inverse` maps every voxel back to its window token.

/** Window and shift sizes MONAI uses for a grid (`get_window_size`). */
export function windowAndShift(
  dims: readonly number[],
  window: number,
  shift: number,
): { window: number[]; shift: number[] } {
  return {
    window: dims.map((d) => (d <= window ? d : window)),
    shift: dims.map((d) => (d <= window ? 0 : shift)),
  };
}

/** Gather indices of one shifted-window round trip for a batch. */
export interface WindowIndex {
  /** Rows of `[b * d * h * w + 1, C]` (the last row zero) in window order. */
  forward: Int32Array;
  /** Rows of the window-ordered tokens for every voxel, in voxel order. */
  inverse: Int32Array;
  /** Padded grid. */
  padded: number[];
  /** Windows per volume. */
  windows: number;
  /** Tokens per window. */
  tokens: number;
}

/** Builds the gather indices of {@linkcode WindowIndex}. */
export function windowIndex(
  batch: number,
  dims: readonly number[],
  window: readonly number[],
  shift: readonly number[],
): WindowIndex {
  const [d, h, w] = dims;
  const padded = dims.map((n, a) => Math.ceil(n / window[a]) * window[a]);
  const [dp, hp, wp] = padded;
  const nw = [dp / window[0], hp / window[1], wp / window[2]];
  const windows = nw[0] * nw[1] * nw[2];
  const tokens = window[0] * window[1] * window[2];
  const voxels = d * h * w;
  const zeroRow = batch * voxels;
  const forward = new Int32Array(batch * windows * tokens);
  const inverse = new Int32Array(batch * voxels);
  let t = 0;
  for (let b = 0; b < batch; b++) {
    for (let i0 = 0; i0 < nw[0]; i0++) {
      for (let i1 = 0; i1 < nw[1]; i1++) {
        for (let i2 = 0; i2 < nw[2]; i2++) {
          for (let j0 = 0; j0 < window[0]; j0++) {
            for (let j1 = 0; j1 < window[1]; j1++) {
              for (let j2 = 0; j2 < window[2]; j2++, t++) {
                // Position in the rolled grid, and the padded-grid voxel rolled into it.
                const z = (i0 * window[0] + j0 + shift[0]) % dp;
                const y = (i1 * window[1] + j1 + shift[1]) % hp;
                const x = (i2 * window[2] + j2 + shift[2]) % wp;
                if (z < d && y < h && x < w) {
                  const src = b * voxels + (z * h + y) * w + x;
                  forward[t] = src;
                  inverse[src] = t;
                } else forward[t] = zeroRow;
              }
            }
          }
        }
      }
    }
  }
  return { forward, inverse, padded, windows, tokens };
}

/**
 * MONAI's `compute_mask`: for each window of the rolled, padded grid, -100 between tokens
 * that came from different regions of the roll and 0 within one. `[windows, N, N]`.
 */
export function attentionMask(
  padded: readonly number[],
  window: readonly number[],
  shift: readonly number[],
): Float32Array {
  const region = (n: number, a: number) => {
    // slices(-window), (-window, -shift), (-shift, None) along axis a of length n
    if (n < padded[a] - window[a]) return 0;
    if (n < padded[a] - shift[a]) return 1;
    return 2;
  };
  const [dp, hp, wp] = padded;
  const nw = [dp / window[0], hp / window[1], wp / window[2]];
  const tokens = window[0] * window[1] * window[2];
  const windows = nw[0] * nw[1] * nw[2];
  const out = new Float32Array(windows * tokens * tokens);
  const labels = new Int32Array(tokens);
  let wi = 0;
  for (let i0 = 0; i0 < nw[0]; i0++) {
    for (let i1 = 0; i1 < nw[1]; i1++) {
      for (let i2 = 0; i2 < nw[2]; i2++, wi++) {
        let t = 0;
        for (let j0 = 0; j0 < window[0]; j0++) {
          for (let j1 = 0; j1 < window[1]; j1++) {
            for (let j2 = 0; j2 < window[2]; j2++, t++) {
              labels[t] = region(i0 * window[0] + j0, 0) * 9 +
                region(i1 * window[1] + j1, 1) * 3 + region(i2 * window[2] + j2, 2);
            }
          }
        }
        const base = wi * tokens * tokens;
        for (let p = 0; p < tokens; p++) {
          for (let q = 0; q < tokens; q++) {
            out[base + p * tokens + q] = labels[p] === labels[q] ? 0 : -100;
          }
        }
      }
    }
  }
  return out;
}

/**
 * MONAI's `relative_position_index` for a cubic window (`[N, N]`, N = window³): the index
 * into the `(2w-1)³` bias table of each token pair's offset.
 */
export function relativePositionIndex(window: number): Int32Array {
  const n = window ** 3;
  const coords = Array.from({ length: n }, (_, t) => [
    Math.floor(t / (window * window)),
    Math.floor(t / window) % window,
    t % window,
  ]);
  const out = new Int32Array(n * n);
  const span = 2 * window - 1;
  for (let p = 0; p < n; p++) {
    for (let q = 0; q < n; q++) {
      const r = [0, 1, 2].map((a) => coords[p][a] - coords[q][a] + window - 1);
      out[p * n + q] = r[0] * span * span + r[1] * span + r[2];
    }
  }
  return out;
}

/**
 * Gather rows of MONAI's v0.9 `PatchMerging` for a `[b, d, h, w, C]` grid flattened to
 * rows (plus one zero row at the end for the padding of odd sizes): for each output voxel
 * of the halved grid, the 8 sub-grid voxels in MONAI's concatenation order, which repeats
 * two of them: (0,0,0), (1,0,0), (0,1,0), (0,0,1), (1,0,1), (0,1,0), (0,0,1), (1,1,1).
 * Gathering these and reshaping to `[b, d/2, h/2, w/2, 8C]` is the concatenation.
 */
export function mergeIndex(batch: number, dims: readonly number[]): Int32Array {
  const [d, h, w] = dims;
  const [od, oh, ow] = dims.map((n) => Math.ceil(n / 2));
  const zeroRow = batch * d * h * w;
  const offsets = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 0], [0, 0, 1], [
    1,
    1,
    1,
  ]];
  const out = new Int32Array(batch * od * oh * ow * 8);
  let t = 0;
  for (let b = 0; b < batch; b++) {
    for (let z = 0; z < od; z++) {
      for (let y = 0; y < oh; y++) {
        for (let x = 0; x < ow; x++) {
          for (const [dz, dy, dx] of offsets) {
            const zz = 2 * z + dz, yy = 2 * y + dy, xx = 2 * x + dx;
            out[t++] = zz < d && yy < h && xx < w ? ((b * d + zz) * h + yy) * w + xx : zeroRow;
          }
        }
      }
    }
  }
  return out;
}
