// A tiny built-in 3 x 5 bitmap font (digits, capitals, a few signs) to write case names
// on preview images; lower case is drawn in capitals.

/** Glyph rows, top to bottom, 3 bits each (4 = left column). */
const GLYPHS: Record<string, number[]> = {
  "0": [7, 5, 5, 5, 7],
  "1": [2, 6, 2, 2, 7],
  "2": [7, 1, 7, 4, 7],
  "3": [7, 1, 3, 1, 7],
  "4": [5, 5, 7, 1, 1],
  "5": [7, 4, 7, 1, 7],
  "6": [7, 4, 7, 5, 7],
  "7": [7, 1, 1, 2, 2],
  "8": [7, 5, 7, 5, 7],
  "9": [7, 5, 7, 1, 7],
  A: [2, 5, 7, 5, 5],
  B: [6, 5, 6, 5, 6],
  C: [3, 4, 4, 4, 3],
  D: [6, 5, 5, 5, 6],
  E: [7, 4, 6, 4, 7],
  F: [7, 4, 6, 4, 4],
  G: [3, 4, 5, 5, 3],
  H: [5, 5, 7, 5, 5],
  I: [7, 2, 2, 2, 7],
  J: [1, 1, 1, 5, 2],
  K: [5, 5, 6, 5, 5],
  L: [4, 4, 4, 4, 7],
  M: [5, 7, 7, 5, 5],
  N: [6, 5, 5, 5, 5],
  O: [2, 5, 5, 5, 2],
  P: [6, 5, 6, 4, 4],
  Q: [2, 5, 5, 6, 3],
  R: [6, 5, 6, 5, 5],
  S: [3, 4, 2, 1, 6],
  T: [7, 2, 2, 2, 2],
  U: [5, 5, 5, 5, 7],
  V: [5, 5, 5, 5, 2],
  W: [5, 5, 7, 7, 5],
  X: [5, 5, 2, 5, 5],
  Y: [5, 5, 2, 2, 2],
  Z: [7, 1, 2, 4, 7],
  ".": [0, 0, 0, 0, 2],
  "-": [0, 0, 7, 0, 0],
  _: [0, 0, 0, 0, 7],
  "/": [1, 1, 2, 4, 4],
  ":": [0, 2, 0, 2, 0],
  "+": [0, 2, 7, 2, 0],
  "?": [6, 1, 2, 0, 2],
  " ": [0, 0, 0, 0, 0],
};

/** Width in pixels of `text` drawn at `scale` (4 columns per character with spacing). */
export function textWidth(text: string, scale: number): number {
  return text.length ? (text.length * 4 - 1) * scale : 0;
}

/** Height in pixels of a line of text at `scale`. */
export function textHeight(scale: number): number {
  return 5 * scale;
}

/**
 * Draws `text` into a grey image (`width` pixels a row) with its top-left corner at
 * (`x`, `y`), in grey level `value`; pixels outside the image are skipped.
 */
export function drawText(
  image: Uint8Array,
  width: number,
  x: number,
  y: number,
  text: string,
  scale = 2,
  value = 255,
): void {
  const height = image.length / width;
  let cx = x;
  for (const ch of text.toUpperCase()) {
    const rows = GLYPHS[ch] ?? GLYPHS["?"];
    for (let r = 0; r < 5; r++) {
      for (let c = 0; c < 3; c++) {
        if (!(rows[r] & (4 >> c))) continue;
        for (let dy = 0; dy < scale; dy++) {
          for (let dx = 0; dx < scale; dx++) {
            const px = cx + c * scale + dx, py = y + r * scale + dy;
            if (px >= 0 && px < width && py >= 0 && py < height) image[py * width + px] = value;
          }
        }
      }
    }
    cx += 4 * scale;
  }
}
