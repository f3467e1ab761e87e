// A JPEG lossless (process 14, selection value 1) encoder for one 16-bit (or 8-bit)
// grey frame, used to write test and benchmark DICOM series. No npm package encodes this
// format (jpeg-lossless-decoder-js only decodes), and the format is small: predictor 1
// differences, Huffman-coded by magnitude category. A fixed 5-bit code for the 17
// categories keeps it simple: valid, not the smallest output.

/** Encodes pixel values (raw bit patterns, `precision` bits) as a JPEG lossless stream. */
export function encodeJpegLossless(
  values: Uint16Array | Uint8Array,
  rows: number,
  columns: number,
  precision: 8 | 16,
): Uint8Array {
  const out: number[] = [];
  const u16 = (v: number) => out.push((v >> 8) & 0xff, v & 0xff);
  u16(0xffd8); // SOI
  u16(0xffc3); // SOF3: lossless, Huffman
  u16(11);
  out.push(precision);
  u16(rows);
  u16(columns);
  out.push(1, 1, 0x11, 0);
  u16(0xffc4); // DHT: 17 symbols (categories 0..16), all 5 bits long
  u16(2 + 1 + 16 + 17);
  out.push(0x00);
  for (let l = 1; l <= 16; l++) out.push(l === 5 ? 17 : 0);
  for (let s = 0; s <= 16; s++) out.push(s);
  u16(0xffda); // SOS: predictor 1, no point transform
  u16(8);
  out.push(1, 1, 0x00, 1, 0, 0);
  let acc = 0, nbits = 0;
  const put = (code: number, len: number) => {
    for (let b = len - 1; b >= 0; b--) {
      acc = (acc << 1) | ((code >> b) & 1);
      if (++nbits === 8) {
        out.push(acc);
        if (acc === 0xff) out.push(0);
        acc = 0;
        nbits = 0;
      }
    }
  };
  const mod = 1 << precision;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < columns; c++) {
      const i = r * columns + c;
      const pred = r === 0 && c === 0
        ? 1 << (precision - 1)
        : c === 0
        ? values[i - columns]
        : values[i - 1];
      let diff = (values[i] - pred) % mod;
      if (diff < 0) diff += mod;
      if (diff >= mod / 2) diff -= mod;
      const mag = Math.abs(diff);
      const ssss = mag === 0 ? 0 : Math.floor(Math.log2(mag)) + 1;
      put(ssss, 5);
      if (ssss > 0 && ssss < 16) {
        const bits = diff > 0 ? diff : diff - 1 + (1 << ssss);
        put(bits & ((1 << ssss) - 1), ssss);
      }
    }
  }
  // Pad with 1-bits. When the data end on a byte boundary, jpeg-lossless-decoder-js reads
  // the EOI marker as part of the last code and loses the last pixel; a byte of 1-bits
  // (stuffed as FF 00) before EOI avoids that and is ignored by other decoders.
  put(nbits > 0 ? (1 << (8 - nbits)) - 1 : 0xff, nbits > 0 ? 8 - nbits : 8);
  u16(0xffd9); // EOI
  return Uint8Array.from(out);
}
