// The VoCo crops over NiiVue's axial view: the region, its base-crop grid (numbered as the
// overlap labels are) and the random crops, placed from NiiVue's own slice geometry
// (`screenSlices`: the tile's pixels and the millimetres it shows), and a card per random
// crop with its overlap labels laid out as the bases lie on screen.

const COLORS = [
  "#f43f5e",
  "#22d3ee",
  "#a3e635",
  "#f59e0b",
  "#c084fc",
  "#fb7185",
  "#34d399",
  "#60a5fa",
];

/** The colour of random crop `c`. */
export const cropColor = (c) => COLORS[c % COLORS.length];

/** A function from voxel-edge coordinates (x, y) of the case to CSS pixels of the axial tile. */
function axialMapper(nv, canvas, affine, z) {
  const tile = nv.screenSlices?.find((s) => s.axCorSag === 0 && s.fovMM?.length >= 2);
  const finite = (a) => a?.every(Number.isFinite);
  if (!tile || !finite(tile.leftTopMM) || !finite(tile.fovMM) || !finite(tile.leftTopWidthHeight)) {
    return null;
  }
  if (!tile.fovMM[0] || !tile.fovMM[1] || !canvas.clientWidth) return null;
  const dpr = canvas.width / Math.max(1, canvas.clientWidth);
  let [left, top, width, height] = tile.leftTopWidthHeight;
  const mirror = width < 0;
  if (mirror) left += width, width = -width;
  return (x, y) => {
    const mx = affine[0][0] * x + affine[0][1] * y + affine[0][2] * z + affine[0][3];
    const my = affine[1][0] * x + affine[1][1] * y + affine[1][2] * z + affine[1][3];
    let fx = (mx - tile.leftTopMM[0]) / tile.fovMM[0];
    const fy = (my - tile.leftTopMM[1]) / tile.fovMM[1];
    if (mirror) fx = 1 - fx;
    return [(left + fx * width) / dpr, (top + (1 - fy) * height) / dpr];
  };
}

function rect(map, x0, y0, size, attrs) {
  const [ax, ay] = map(x0 - 0.5, y0 - 0.5), [bx, by] = map(x0 + size - 0.5, y0 + size - 0.5);
  const x = Math.min(ax, bx), y = Math.min(ay, by), w = Math.abs(bx - ax), h = Math.abs(by - ay);
  return {
    x,
    y,
    w,
    h,
    svg: `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${w.toFixed(1)}" height="${
      h.toFixed(1)
    }" ${attrs}/>`,
  };
}

/** Redraws the overlay `svg` for `sample` (nothing when there is none or no axial tile). */
export function drawOverlay(svg, canvas, nv, info, sample, z) {
  const map = sample && info ? axialMapper(nv, canvas, info.affine, z ?? 0) : null;
  if (!map) {
    svg.innerHTML = "";
    return;
  }
  const { spec, regionStart: r } = sample;
  const inside = z >= r[2] && z < r[2] + sample.region[2];
  const dash = inside ? "" : ` stroke-dasharray="6 4" opacity="0.6"`;
  const parts = [];
  const region = rect(
    map,
    r[0],
    r[1],
    spec.grid * spec.base,
    `class="region" fill="none" stroke="#ffffff" stroke-width="2"${dash}`,
  );
  parts.push(region.svg);
  sample.bases.forEach((b, k) => {
    const cell = rect(
      map,
      b[0],
      b[1],
      spec.base,
      `class="base" fill="none" stroke="#facc15" stroke-width="1"${dash}`,
    );
    parts.push(
      cell.svg,
      `<text x="${(cell.x + 4).toFixed(1)}" y="${
        (cell.y + 13).toFixed(1)
      }" fill="#facc15" font-size="11">b${k}</text>`,
    );
  });
  sample.crops.forEach((c, i) => {
    const box = rect(
      map,
      c.start[0],
      c.start[1],
      spec.base,
      `class="crop" fill="${cropColor(i)}" fill-opacity="0.12" stroke="${
        cropColor(i)
      }" stroke-width="2.5"${dash}`,
    );
    parts.push(
      box.svg,
      `<text x="${(box.x + box.w - 6).toFixed(1)}" y="${
        (box.y + 16).toFixed(1)
      }" text-anchor="end" fill="${cropColor(i)}" font-size="14" font-weight="bold">#${
        i + 1
      }</text>`,
    );
  });
  if (!inside) {
    parts.push(
      `<text x="${(region.x + 4).toFixed(1)}" y="${
        (region.y + region.h + 16).toFixed(1)
      }" fill="#ffffff" font-size="12">crops lie on slices ${r[2]}..${
        r[2] + sample.region[2] - 1
      }</text>`,
    );
  }
  svg.innerHTML = parts.join("");
}

/** One card per random crop: where it starts and its overlap with each base, as on screen. */
export function cropCards(container, sample) {
  const g = sample.spec.grid;
  container.replaceChildren();
  sample.crops.forEach((c, i) => {
    const card = document.createElement("div");
    card.className = "crop-card";
    card.style.borderColor = cropColor(i);
    const rows = [];
    for (let j = g - 1; j >= 0; j--) {
      const cells = [];
      for (let k = 0; k < g; k++) {
        const v = c.labels[k * g + j];
        cells.push(
          `<td title="base b${k * g + j}" style="background: rgba(250, 204, 21, ${
            (v * 0.8).toFixed(2)
          })">${v ? v.toFixed(2) : "0"}</td>`,
        );
      }
      rows.push(`<tr>${cells.join("")}</tr>`);
    }
    card.innerHTML = `<b style="color:${cropColor(i)}">#${i + 1}</b> at [${
      c.start.join(", ")
    }]<table>${rows.join("")}</table>`;
    container.append(card);
  });
}
