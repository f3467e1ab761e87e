// The viewer page: the case list, a case in three planes with NiiVue (its slabs streamed
// in from the server chunk by chunk, the slab of the shown slice first), the window, the
// VoCo crops of a seed over the axial view, and the runs' curves polled while they train.
// Every view has its own URL (case, slice, window, seed, runs), kept in the address bar.
import { MULTIPLANAR_TYPE, Niivue, NVImage, SHOW_RENDER, SLICE_TYPE } from "/niivue.js";
import { drawCharts } from "/chart.js";
import { cropCards, drawOverlay } from "/overlay.js";

const $ = (id) => document.getElementById(id);
const q = new URLSearchParams(location.search);
const num = (k, d) => (q.get(k) !== null && q.get(k) !== "" ? Number(q.get(k)) : d);
const state = {
  view: q.get("view") ?? "case",
  cache: num("cache", 0),
  caseId: q.get("case"),
  z: num("z", undefined),
  win: q.get("win")?.split(",").map(Number),
  layout: q.get("layout") ?? "3",
  sampler: q.get("sampler") === "1",
  seed: num("seed", 0),
  sample: num("sample", 0),
  crops: num("crops", undefined),
  runs: (q.get("runs") ?? "").split(",").filter(Boolean).map(Number),
  smooth: num("smooth", 0.6),
};
/** What tests and the benchmark read: timings and counts of what is on screen. */
const status = {
  slabsLoaded: 0,
  slabsTotal: 0,
  firstSlabMs: null,
  allSlabsMs: null,
  crops: 0,
  rows: {},
};
globalThis.viewer = { state, status };

function syncUrl() {
  const p = new URLSearchParams();
  if (state.view === "runs") {
    p.set("view", "runs");
    if (state.runs.length) p.set("runs", state.runs.join(","));
    p.set("smooth", String(state.smooth));
  } else if (state.caseId) {
    p.set("cache", String(state.cache));
    p.set("case", state.caseId);
    if (state.z !== undefined) p.set("z", String(state.z));
    if (state.win) p.set("win", state.win.join(","));
    if (state.layout !== "3") p.set("layout", state.layout);
    if (state.sampler) {
      p.set("sampler", "1");
      p.set("seed", String(state.seed));
      p.set("sample", String(state.sample));
      if (state.crops) p.set("crops", String(state.crops));
    }
  }
  history.replaceState(null, "", `?${p.toString().replaceAll("%2F", "/").replaceAll("%2C", ",")}`);
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
  console.error(message);
}

async function getJson(url) {
  const r = await fetch(url);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error ?? `${url}: HTTP ${r.status}`);
  return body;
}

// ---- the case list ----------------------------------------------------------------------
let catalog = { cases: [], runs: [], caches: [] };

function renderCaseList() {
  const term = $("search").value.trim().toLowerCase();
  const shown = catalog.cases.filter((c) => !term || c.id.toLowerCase().includes(term));
  $("case-count").textContent = `${shown.length} of ${catalog.cases.length} cases` +
    (catalog.caches.length > 1 ? ` in ${catalog.caches.length} caches` : "");
  const list = $("case-list");
  list.replaceChildren();
  let group = "";
  for (const c of shown) {
    const dataset = `${catalog.caches.length > 1 ? `${c.cache}: ` : ""}${c.id.split("/")[0]}`;
    if (dataset !== group) {
      group = dataset;
      const li = document.createElement("li");
      li.className = "dataset";
      li.textContent = dataset;
      list.append(li);
    }
    const li = document.createElement("li");
    li.className = "case";
    const a = document.createElement("a");
    a.href = `?cache=${c.cache}&case=${c.id}`;
    a.dataset.id = c.id;
    a.dataset.cache = String(c.cache);
    if (c.id === state.caseId && c.cache === state.cache) a.classList.add("active");
    const facts = c.error
      ? `<span class="error">${escapeHtml(c.error)}</span>`
      : `${c.shape.join(" × ")} · ${c.spacing?.map((s) => +s.toFixed(2)).join(" × ") ?? "?"} mm · ${
        escapeHtml(c.recipe ?? "?")
      }`;
    a.innerHTML = `${
      escapeHtml(c.id.split("/").slice(1).join("/"))
    }<div class="facts">${facts}</div>`;
    a.addEventListener("click", (e) => {
      e.preventDefault();
      if (c.error) return;
      state.z = undefined;
      state.win = undefined;
      openCase(c.cache, c.id).catch((err) => showError(err.message));
    });
    li.append(a);
    list.append(li);
  }
}

const escapeHtml = (s) =>
  String(s).replace(
    /[<>&"]/g,
    (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c],
  );

// ---- one case in NiiVue -----------------------------------------------------------------
const nv = new Niivue({
  backColor: [0, 0, 0, 1],
  show3Dcrosshair: false,
  crosshairColor: [0.2, 0.8, 1, 1],
  multiplanarShowRender: SHOW_RENDER.NEVER,
  multiplanarLayout: MULTIPLANAR_TYPE.ROW,
  isColorbar: false,
});
let current = null; // { info, vol, token }
let loadToken = 0;
let sample = null;

async function openCase(cache, id) {
  const token = ++loadToken;
  const t0 = performance.now();
  Object.assign(status, { slabsLoaded: 0, slabsTotal: 0, firstSlabMs: null, allSlabsMs: null });
  document.body.dataset.case = "loading";
  state.cache = cache;
  state.caseId = id;
  setView("case");
  const info = await getJson(`/api/case?cache=${cache}&id=${encodeURIComponent(id)}`);
  if (token !== loadToken) return;
  const [nx, ny, nz] = info.shape;
  const bytes = { uint8: 1, uint16: 2, float32: 4 }[info.type];
  const givenZ = state.z !== undefined;
  state.z = Math.min(nz - 1, Math.max(0, state.z ?? Math.floor(nz / 2)));
  showFacts(info);
  renderCaseList();
  // Slabs of whole chunks, the shown slice's first, then outwards. NiiVue re-reads a whole
  // volume on each upload, so the case goes to it once, complete.
  const n = Math.ceil(nz / info.slab), first = Math.floor(state.z / info.slab);
  const order = [first];
  for (let d = 1; order.length < n; d++) {
    if (first + d < n) order.push(first + d);
    if (first - d >= 0) order.push(first - d);
  }
  status.slabsTotal = n;
  const header = Uint8Array.from(atob(info.header), (c) => c.charCodeAt(0));
  const whole = new Uint8Array(352 + nx * ny * nz * bytes);
  whole.set(header);
  const put = ({ z0, data }) => whole.set(data, 352 + z0 * nx * ny * bytes);
  // On screen at once: a few slices around the shown one as a volume of their own (its
  // affine moved to its first slice; the server reads their chunks only), while the
  // slabs of the whole case come in.
  const thin = Math.min(8, nz), t0z = Math.max(0, Math.min(nz - thin, state.z - thin / 2));
  const firstSlab = await fetchSlices(info, t0z, t0z + thin);
  if (token !== loadToken) return;
  const part = new Uint8Array(352 + firstSlab.data.length);
  part.set(header);
  part.set(firstSlab.data, 352);
  slabHeader(part, thin, t0z);
  const win = state.win ?? info.window;
  await show(info, part.buffer, firstSlab.z0, win, token);
  if (token !== loadToken) return;
  $("slice").max = String(nz - 1);
  setWindowInputs(win, info.unit);
  await settle();
  status.firstSlabMs = performance.now() - t0;
  document.body.dataset.case = "first-slab";
  syncUrl();
  if (state.sampler) await loadSample(!givenZ);
  if (thin < nz) {
    await loadSlabs(info, order, put, token);
    if (token !== loadToken) return;
    await show(info, whole.buffer, 0, state.win ?? win, token);
    await settle();
  }
  status.allSlabsMs = performance.now() - t0;
  document.body.dataset.case = "loaded";
  $("progress").textContent = "";
}

/** Makes a case's NIfTI header that of `dz` slices from slice `z0` (dims, sform origin). */
function slabHeader(bytes, dz, z0) {
  const v = new DataView(bytes.buffer, bytes.byteOffset);
  v.setInt16(46, dz, true);
  for (const row of [280, 296, 312]) {
    v.setFloat32(row + 12, v.getFloat32(row + 12, true) + v.getFloat32(row + 8, true) * z0, true);
  }
}

/** Shows a NIfTI buffer (the case, or a slab of it from slice `z0`) in NiiVue. */
async function show(info, buffer, z0, win, token) {
  const vol = await NVImage.loadFromUrl({
    url: `${info.id.replaceAll("/", "_")}.nii`,
    buffer,
    cal_min: win[0],
    cal_max: win[1],
    trustCalMinMax: true,
  });
  if (token !== loadToken) return;
  for (const v of [...nv.volumes]) nv.removeVolume(v);
  vol.cal_min = win[0];
  vol.cal_max = win[1];
  current = { info, vol, token, z0 };
  setLayout();
  nv.addVolume(vol);
  moveToSlice(state.z);
}

/** Waits until the GPU has drawn what was asked (NiiVue's uploads run asynchronously). */
function settle() {
  return new Promise((resolve) =>
    requestAnimationFrame(() => {
      nv.gl.finish();
      nv.gl.readPixels(0, 0, 1, 1, nv.gl.RGBA, nv.gl.UNSIGNED_BYTE, new Uint8Array(4));
      resolve();
    })
  );
}

/** Slab `s` of a case: its first slice and its bytes (x fastest, the stored type). */
function fetchSlab(info, s) {
  return fetchSlices(info, s * info.slab, Math.min(info.shape[2], (s + 1) * info.slab));
}

/** Slices `[z0, z1)` of a case: their first slice and their bytes. */
async function fetchSlices(info, z0, z1) {
  const r = await fetch(
    `/api/slab?cache=${info.cache}&id=${encodeURIComponent(info.id)}&z0=${z0}&z1=${z1}`,
  );
  if (!r.ok) throw new Error((await r.json()).error ?? `slices ${z0}..${z1}: HTTP ${r.status}`);
  return { z0, data: new Uint8Array(await r.arrayBuffer()) };
}

function showFacts(info) {
  $("case-title").textContent = `${info.id}`;
  const a = info.attributes;
  const facts = [
    `${info.shape.join(" × ")} voxels`,
    `${info.spacing.map((s) => +s.toFixed(3)).join(" × ")} mm`,
    `recipe ${info.recipe ?? "?"}`,
    `stored ${info.type}`,
    a.source ? `from ${a.source}` : "",
    catalog.caches[info.cache] ?? "",
  ].filter(Boolean);
  $("case-facts").textContent = facts.join(" · ");
}

/** Fetches the other slabs, two at a time, handing each to `put`. */
async function loadSlabs(info, order, put, token) {
  let next = 0;
  const worker = async () => {
    while (next < order.length && token === loadToken) {
      const slab = await fetchSlab(info, order[next++]);
      if (token !== loadToken) return;
      put(slab);
      status.slabsLoaded++;
      $("progress").textContent = `loading: ${status.slabsLoaded} of ${status.slabsTotal} slabs`;
    }
  };
  await Promise.all([worker(), worker()]);
}

function moveToSlice(z) {
  if (!current) return;
  const [nx, ny] = current.info.shape;
  const vox = nv.frac2vox(nv.scene.crosshairPos);
  const x = Number.isFinite(vox[0]) ? vox[0] : Math.floor(nx / 2);
  const y = Number.isFinite(vox[1]) ? vox[1] : Math.floor(ny / 2);
  const dz = current.vol.hdr.dims[3];
  nv.scene.crosshairPos = nv.vox2frac([x, y, Math.max(0, Math.min(dz - 1, z - current.z0))]);
  nv.drawScene();
  nv.createOnLocationChange();
  $("slice").value = String(z);
  $("slice-value").textContent = `${z}`;
}

function setWindowInputs(win, unit) {
  $("win-lo").value = String(+win[0].toFixed(2));
  $("win-hi").value = String(+win[1].toFixed(2));
  $("win-unit").textContent = unit;
}

function applyWindow() {
  const lo = Number($("win-lo").value), hi = Number($("win-hi").value);
  if (!current || !(hi > lo)) return;
  current.vol.cal_min = lo;
  current.vol.cal_max = hi;
  state.win = [lo, hi];
  nv.updateGLVolume();
  syncUrl();
}

function setLayout() {
  $("layout").value = state.layout;
  nv.setSliceType(state.layout === "0" ? SLICE_TYPE.AXIAL : SLICE_TYPE.MULTIPLANAR);
}

nv.onLocationChange = (data) => {
  if (!current) return;
  const vox = data.vox.map((v, a) => Math.round(v) + (a === 2 ? current.z0 : 0));
  const value = data.values?.[0]?.value;
  const unit = current.info.unit === "HU" ? " HU" : "";
  $("location").textContent =
    `${Array.from(data.mm).slice(0, 3).map((v) => v.toFixed(1)).join(", ")} mm (RAS)` +
    ` · voxel ${vox.join(", ")}` + (value !== undefined ? ` · ${(+value).toFixed(1)}${unit}` : "");
  const whole = current.z0 === 0 && current.vol.hdr.dims[3] === current.info.shape[2];
  if (whole && vox[2] !== state.z) {
    state.z = vox[2];
    $("slice").value = String(state.z);
    $("slice-value").textContent = `${state.z}`;
    syncUrl();
  }
};

// ---- the sampler's crops ----------------------------------------------------------------
/** Fetches and draws the sample of the seed; `jump` moves to the middle of its region. */
async function loadSample(jump) {
  if (!current) return;
  const { info } = current;
  const p = new URLSearchParams({
    cache: String(info.cache),
    id: info.id,
    seed: String(state.seed),
    sample: String(state.sample),
  });
  if (state.crops) p.set("crops", String(state.crops));
  sample = await getJson(`/api/sample?${p}`);
  status.crops = sample.crops.length;
  if (jump) {
    const mid = sample.regionStart[2] + Math.floor(sample.region[2] / 2);
    state.z = Math.max(0, Math.min(info.shape[2] - 1, mid));
    moveToSlice(state.z);
  }
  $("crops").placeholder = String(sample.spec.crops);
  $("sampler-note").textContent =
    `VoCo ${sample.version}: region ${sample.region.join(" × ")} at ` +
    `[${sample.regionStart.join(", ")}], ${sample.spec.grid}×${sample.spec.grid} bases of ` +
    `${sample.spec.base}³, ${sample.crops.length} random crops (slices ` +
    `${sample.regionStart[2]}..${sample.regionStart[2] + sample.region[2] - 1})`;
  cropCards($("crop-table"), sample);
  document.body.dataset.sampler = String(sample.crops.length);
  syncUrl();
}

function clearSample() {
  sample = null;
  status.crops = 0;
  $("sampler-note").textContent = "";
  $("crop-table").replaceChildren();
  delete document.body.dataset.sampler;
}

let lastOverlay = "";
function overlayLoop() {
  const key = JSON.stringify([
    nv.screenSlices?.map((s) => [s.leftTopWidthHeight, s.leftTopMM, s.fovMM]),
    sample && [sample.seed, sample.sample, sample.crops.length],
    state.z,
    $("gl").clientWidth,
  ]);
  if (key !== lastOverlay) {
    lastOverlay = key;
    drawOverlay($("overlay"), $("gl"), nv, current?.info, sample, state.z);
  }
  requestAnimationFrame(overlayLoop);
}

// ---- runs -------------------------------------------------------------------------------
const runData = new Map(); // id -> { name, rows, lastStep, config }
let pollTimer = 0;

function renderRunList() {
  const list = $("run-list");
  list.replaceChildren();
  for (const r of catalog.runs) {
    const li = document.createElement("li");
    li.innerHTML = `<label class="row"><input type="checkbox" data-run="${r.id}"${
      state.runs.includes(r.id) ? " checked" : ""
    }> ${escapeHtml(r.name)}</label>`;
    li.querySelector("input").addEventListener("change", (e) => {
      const id = Number(e.target.dataset.run);
      state.runs = e.target.checked
        ? [...state.runs, id].sort((a, b) => a - b)
        : state.runs.filter((x) => x !== id);
      syncUrl();
      pollRuns();
    });
    list.append(li);
  }
  $("smooth").value = String(state.smooth);
  $("smooth-value").textContent = String(state.smooth);
}

async function pollRuns() {
  clearTimeout(pollTimer);
  try {
    for (const id of state.runs) {
      let d = runData.get(id);
      if (!d) {
        const run = await getJson(`/api/run?run=${id}`);
        d = { name: run.name, config: run.config, rows: [], lastStep: -1 };
        runData.set(id, d);
      }
      const up = await getJson(`/api/metrics?run=${id}&after=${d.lastStep}`);
      if (up.lastStep < d.lastStep) {
        // The run was resumed from an earlier checkpoint: its later rows were dropped.
        d.rows = d.rows.filter((r) => r.step <= up.lastStep);
      }
      d.rows.push(...up.rows);
      d.lastStep = d.rows.at(-1)?.step ?? -1;
      if (!d.config) d.config = (await getJson(`/api/run?run=${id}`)).config;
      status.rows[id] = d.rows.length;
    }
    if (state.view === "runs") renderRuns();
  } catch (e) {
    showError(e.message);
  }
  pollTimer = setTimeout(pollRuns, 2000);
}

function renderRuns() {
  const runs = state.runs.map((id) => ({ id, ...runData.get(id) })).filter((r) => r.rows);
  const total = runs.reduce((a, r) => a + r.rows.length, 0);
  $("runs-note").textContent = runs.length
    ? runs.map((r) => `${r.name}: step ${r.lastStep < 0 ? "–" : r.lastStep}`).join(" · ") +
      " · updated live"
    : "Tick a run on the left.";
  drawCharts($("charts"), runs, state.smooth);
  document.body.dataset.rows = String(total);
  $("configs").innerHTML = runs.map((r) =>
    `<details><summary>${escapeHtml(r.name)}: config</summary><pre>${
      escapeHtml(JSON.stringify(r.config ?? "no config.json yet", null, 2))
    }</pre></details>`
  ).join("");
}

// ---- wiring -----------------------------------------------------------------------------
function setView(view) {
  state.view = view;
  $("case-view").hidden = view !== "case";
  $("runs-view").hidden = view !== "runs";
  $("cases-pane").hidden = view !== "case";
  $("runs-pane").hidden = view !== "runs";
  $("tab-cases").classList.toggle("active", view === "case");
  $("tab-runs").classList.toggle("active", view === "runs");
  if (view === "runs") renderRuns();
  syncUrl();
}

async function main() {
  addEventListener("error", (e) => showError(e.message));
  addEventListener("unhandledrejection", (e) => showError(e.reason?.message ?? String(e.reason)));
  await nv.attachToCanvas($("gl"));
  catalog = await getJson("/api/state");
  $("tab-cases").onclick = () => setView("case");
  $("tab-runs").onclick = () => setView("runs");
  $("search").oninput = renderCaseList;
  $("slice").oninput = () => {
    state.z = Number($("slice").value);
    moveToSlice(state.z);
    syncUrl();
  };
  $("win-lo").onchange = $("win-hi").onchange = applyWindow;
  $("win-reset").onclick = () => {
    if (!current) return;
    setWindowInputs(current.info.window, current.info.unit);
    applyWindow();
  };
  $("layout").onchange = () => {
    state.layout = $("layout").value;
    setLayout();
    syncUrl();
  };
  $("sampler").checked = state.sampler;
  $("seed").value = String(state.seed);
  $("sample").value = String(state.sample);
  if (state.crops) $("crops").value = String(state.crops);
  const samplerChanged = () => {
    state.sampler = $("sampler").checked;
    state.seed = Math.max(0, Math.floor(Number($("seed").value) || 0));
    state.sample = Math.max(0, Math.floor(Number($("sample").value) || 0));
    state.crops = Number($("crops").value) || undefined;
    if (state.sampler) loadSample(true).catch((e) => showError(e.message));
    else {
      clearSample();
      syncUrl();
    }
  };
  for (const id of ["sampler", "seed", "sample", "crops"]) $(id).onchange = samplerChanged;
  $("smooth").oninput = () => {
    state.smooth = Number($("smooth").value);
    $("smooth-value").textContent = String(state.smooth);
    renderRuns();
    syncUrl();
  };
  renderCaseList();
  renderRunList();
  requestAnimationFrame(overlayLoop);
  if (state.runs.length || catalog.runs.length) {
    if (!state.runs.length && catalog.runs.length) state.runs = [0];
    pollRuns();
  }
  if (state.view === "runs" || (!state.caseId && !catalog.cases.length)) setView("runs");
  else {
    const first = catalog.cases.find((c) => !c.error);
    const id = state.caseId ?? first?.id;
    if (id) await openCase(state.caseId ? state.cache : first.cache, id);
  }
}

main().catch((e) => showError(e.message));
