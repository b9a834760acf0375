// vetpacs light viewer: one study over DICOMweb (same origin, session cookie), Cornerstone3D stack
// viewport, touch gestures, measurements incl. VHS and Norberg angle. No downloads, no popups (WeChat).
import "./style.css";
import * as cs from "@cornerstonejs/core";
import * as tools from "@cornerstonejs/tools";
import dicomImageLoader from "@cornerstonejs/dicom-image-loader";
import { DEFAULT_VERTEBRAE, NORBERG_NORMAL_MIN, VHS_RANGES, angleAt, distance, norbergVerdict, speciesKind, vhs } from "./measure.js";

const T = {
  zh: {
    loading: "加载中…", noStudy: "未指定检查。", notFound: "找不到该检查，或无权查看。", failed: "加载失败：",
    wl: "窗宽窗位", pan: "平移", scroll: "翻页", zoom: "缩放", length: "测距", angle: "角度", magnify: "放大镜",
    rotate: "旋转", invert: "反色", reset: "复位", vhs: "VHS", norberg: "Norberg", calibrate: "校准", clear: "清除",
    series: "序列", image: "图像", noSpacing: "图像没有像素间距：长度以像素计，可用“校准”设定。",
    vhsHelp: "依次画三条线：① 长轴（气管分叉腹侧至心尖）② 短轴（与长轴垂直的最宽处）③ 自 T4 前缘起沿椎体画过 N 节椎体。",
    vertebrae: "椎体数 N", norbergHelp: "每侧依次点三点：对侧股骨头中心 → 本侧股骨头中心 → 本侧髋臼前缘。先左后右。",
    calibrateHelp: "沿已知长度的物体画一条线，输入其实际长度后应用。", knownLength: "实际长度 (mm)", apply: "应用",
    calibrated: "已校准", left: "左", right: "右", normal: "正常", low: "偏低", high: "偏高", ref: "参考范围",
    long: "长轴", short: "短轴", lengths: "长度", angles: "角度",
  },
  en: {
    loading: "Loading…", noStudy: "No study given.", notFound: "No such study, or not yours to see.", failed: "Could not load: ",
    wl: "Window", pan: "Pan", scroll: "Scroll", zoom: "Zoom", length: "Length", angle: "Angle", magnify: "Magnify",
    rotate: "Rotate", invert: "Invert", reset: "Reset", vhs: "VHS", norberg: "Norberg", calibrate: "Calibrate", clear: "Clear",
    series: "Series", image: "Image", noSpacing: "The image has no pixel spacing: lengths are in pixels; use Calibrate.",
    vhsHelp: "Draw three lines: (1) long axis (carina to apex) (2) short axis (widest, perpendicular) (3) from the cranial edge of T4 along N vertebral bodies.",
    vertebrae: "Vertebrae N", norbergHelp: "For each hip click: the other femoral head centre → this femoral head centre → this cranial acetabular rim. Left first.",
    calibrateHelp: "Draw a line along an object of known length, enter its length and apply.", knownLength: "Known length (mm)", apply: "Apply",
    calibrated: "calibrated", left: "Left", right: "Right", normal: "normal", low: "low", high: "high", ref: "reference",
    long: "Long axis", short: "Short axis", lengths: "Lengths", angles: "Angles",
  },
};
const lang = /(?:^|;\s*)django_language=en/.test(document.cookie) || /[?&]lang=en\b/.test(location.search) ? "en" : "zh";
const t = T[lang];
document.documentElement.lang = lang === "en" ? "en" : "zh-CN";

const $ = (id) => document.getElementById(id);
const ENGINE_ID = "vetpacs-light";
const VIEWPORT_ID = "light-vp";
const GROUP_ID = "light-tools";

class VHSLineTool extends tools.LengthTool { static toolName = "VHSLine"; }
class NorbergAngleTool extends tools.AngleTool { static toolName = "NorbergAngle"; }
class CalibrationLineTool extends tools.LengthTool { static toolName = "CalibrationLine"; }

// The modes of the primary pointer (one finger / left button); two-finger pinch always zooms and pans.
const MODES = [
  { id: "wl", tool: tools.WindowLevelTool.toolName, icon: "◐" },
  { id: "scroll", tool: tools.StackScrollTool.toolName, icon: "⇕" },
  { id: "pan", tool: tools.PanTool.toolName, icon: "✥" },
  { id: "zoom", tool: tools.ZoomTool.toolName, icon: "⊕" },
  { id: "magnify", tool: tools.MagnifyTool.toolName, icon: "◎" },
  { id: "length", tool: tools.LengthTool.toolName, icon: "↔" },
  { id: "angle", tool: tools.AngleTool.toolName, icon: "∠" },
  { id: "vhs", tool: VHSLineTool.toolName, icon: "♥" },
  { id: "norberg", tool: NorbergAngleTool.toolName, icon: "∡" },
  { id: "calibrate", tool: CalibrationLineTool.toolName, icon: "⇔" },
];
const ACTIONS = [
  { id: "rotate", icon: "↻", run: () => rotate() },
  { id: "invert", icon: "◑", run: () => invert() },
  { id: "clear", icon: "⌫", run: () => clearMeasurements() },
  { id: "reset", icon: "⟲", run: () => resetView() },
];

const state = {
  study: new URLSearchParams(location.search).get("study") || "",
  series: [], // [{uid, number, description, modality, imageIds, spacing}]
  current: 0,
  shown: null, // the series whose stack is loaded and drawn (current may still be loading)
  mode: "wl",
  calibration: null, // mm per world unit, set by the user
  vertebrae: DEFAULT_VERTEBRAE,
  species: null,
  firstImageAt: null,
};
let viewport = null;
let toolGroup = null;
let readyResolve;
const ready = new Promise((r) => (readyResolve = r));

function tag(instance, key) {
  const el = instance[key];
  return el && el.Value && el.Value.length ? el.Value[0] : undefined;
}
function text(v) {
  if (v == null) return "";
  if (typeof v === "object") return v.Alphabetic || v.Ideographic || "";
  return String(v);
}

async function loadMetadata(uid) {
  const resp = await fetch(`/dicomweb/studies/${encodeURIComponent(uid)}/metadata`, {
    headers: { Accept: "application/dicom+json" },
    credentials: "same-origin",
  });
  if (resp.status === 401) {
    location.href = "/login/?next=" + encodeURIComponent(location.pathname + location.search);
    throw new Error("401");
  }
  if (resp.status === 404) throw new Error(t.notFound);
  if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
  return resp.json();
}

function buildSeries(instances) {
  const bySeries = new Map();
  const root = `${location.origin}/dicomweb/studies/${encodeURIComponent(state.study)}`;
  for (const inst of instances) {
    if (!tag(inst, "00280010")) continue; // no Rows: not an image (SR, PDF)
    const seriesUid = tag(inst, "0020000E");
    if (!bySeries.has(seriesUid)) {
      bySeries.set(seriesUid, {
        uid: seriesUid,
        number: Number(tag(inst, "00200011") ?? 0),
        description: text(tag(inst, "0008103E")),
        modality: text(tag(inst, "00080060")),
        instances: [],
      });
    }
    bySeries.get(seriesUid).instances.push(inst);
  }
  const series = [...bySeries.values()].sort((a, b) => a.number - b.number);
  for (const s of series) {
    s.instances.sort((a, b) => Number(tag(a, "00200013") ?? 0) - Number(tag(b, "00200013") ?? 0));
    s.imageIds = [];
    for (const inst of s.instances) {
      const sop = tag(inst, "00080018");
      const frames = Number(tag(inst, "00280008") ?? 1) || 1;
      for (let f = 1; f <= frames; f++) {
        const imageId = `wadors:${root}/series/${encodeURIComponent(s.uid)}/instances/${encodeURIComponent(sop)}/frames/${f}`;
        dicomImageLoader.wadors.metaDataManager.add(imageId, inst);
        s.imageIds.push(imageId);
      }
    }
    const first = s.instances[0];
    // PS3.3 10.7.1.3: PixelSpacing in the patient plane, else ImagerPixelSpacing at the detector.
    const spacing = (first["00280030"] && first["00280030"].Value) || (first["00181164"] && first["00181164"].Value);
    s.spacing = spacing ? spacing.map(Number) : null;
  }
  return series.filter((s) => s.imageIds.length);
}

function hasWebGL() {
  try {
    return !!document.createElement("canvas").getContext("webgl2");
  } catch (e) {
    return false;
  }
}

async function setUp() {
  await cs.init();
  if (!hasWebGL()) cs.setUseCPURendering(true);
  dicomImageLoader.init({ maxWebWorkers: Math.max(1, Math.min(2, navigator.hardwareConcurrency || 1)) });
  tools.init();
  for (const Tool of [tools.WindowLevelTool, tools.PanTool, tools.ZoomTool, tools.StackScrollTool, tools.MagnifyTool,
    tools.LengthTool, tools.AngleTool, VHSLineTool, NorbergAngleTool, CalibrationLineTool]) {
    tools.addTool(Tool);
  }
  const engine = new cs.RenderingEngine(ENGINE_ID);
  engine.enableElement({
    viewportId: VIEWPORT_ID,
    type: cs.Enums.ViewportType.STACK,
    element: $("viewport"),
    defaultOptions: { background: [0, 0, 0] },
  });
  viewport = engine.getViewport(VIEWPORT_ID);
  toolGroup = tools.ToolGroupManager.createToolGroup(GROUP_ID);
  for (const name of [tools.WindowLevelTool, tools.PanTool, tools.ZoomTool, tools.StackScrollTool, tools.MagnifyTool,
    tools.LengthTool, tools.AngleTool, VHSLineTool, NorbergAngleTool, CalibrationLineTool].map((x) => x.toolName)) {
    toolGroup.addTool(name);
  }
  toolGroup.addViewport(VIEWPORT_ID, ENGINE_ID);
  const { MouseBindings } = tools.Enums;
  // Always on: wheel pages, right button and two-finger pinch zoom, middle button pans.
  toolGroup.setToolActive(tools.StackScrollTool.toolName, { bindings: [{ mouseButton: MouseBindings.Wheel }] });
  toolGroup.setToolActive(tools.ZoomTool.toolName, {
    bindings: [{ mouseButton: MouseBindings.Secondary }, { numTouchPoints: 2 }],
  });
  toolGroup.setToolActive(tools.PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }, { numTouchPoints: 3 }] });
  for (const name of [tools.LengthTool, tools.AngleTool, VHSLineTool, NorbergAngleTool, CalibrationLineTool].map((x) => x.toolName)) {
    toolGroup.setToolPassive(name);
  }
  setMode("wl");
  window.addEventListener("resize", () => engine.resize(true, true));
  const el = $("viewport");
  for (const ev of [cs.EVENTS.VOI_MODIFIED, cs.EVENTS.STACK_NEW_IMAGE, cs.EVENTS.CAMERA_MODIFIED, cs.EVENTS.IMAGE_RENDERED]) {
    el.addEventListener(ev, updateOverlay);
  }
  el.addEventListener(cs.EVENTS.IMAGE_RENDERED, () => {
    if (state.firstImageAt == null) state.firstImageAt = performance.now();
    $("status").textContent = "";
  });
  const E = tools.Enums.Events;
  for (const ev of [E.ANNOTATION_COMPLETED, E.ANNOTATION_MODIFIED, E.ANNOTATION_REMOVED]) {
    cs.eventTarget.addEventListener(ev, () => updatePanel());
  }
  cs.eventTarget.addEventListener(E.ANNOTATION_COMPLETED, holdNorbergWhileIncomplete);
}

function buildToolbar() {
  const nav = $("tools");
  nav.innerHTML = "";
  for (const m of MODES) {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.mode = m.id;
    b.innerHTML = `<span class="i">${m.icon}</span><span>${t[m.id]}</span>`;
    b.addEventListener("click", () => setMode(m.id));
    nav.appendChild(b);
  }
  for (const a of ACTIONS) {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.action = a.id;
    b.innerHTML = `<span class="i">${a.icon}</span><span>${t[a.id]}</span>`;
    b.addEventListener("click", a.run);
    nav.appendChild(b);
  }
}

function setMode(id) {
  const mode = MODES.find((m) => m.id === id);
  if (!mode || !toolGroup) return;
  const { MouseBindings } = tools.Enums;
  const previous = MODES.find((m) => m.id === state.mode);
  if (previous && previous.tool !== mode.tool) {
    // Annotation tools stay passive so their drawings remain visible and editable.
    toolGroup.setToolPassive(previous.tool);
    restoreAlwaysOn(previous.tool);
  }
  toolGroup.setToolActive(mode.tool, { bindings: [{ mouseButton: MouseBindings.Primary }, ...alwaysOn(mode.tool)] });
  state.mode = id;
  document.querySelectorAll("#tools button[data-mode]").forEach((b) => b.classList.toggle("on", b.dataset.mode === id));
  updatePanel();
}

function alwaysOn(toolName) {
  const { MouseBindings } = tools.Enums;
  if (toolName === tools.StackScrollTool.toolName) return [{ mouseButton: MouseBindings.Wheel }];
  if (toolName === tools.ZoomTool.toolName) return [{ mouseButton: MouseBindings.Secondary }, { numTouchPoints: 2 }];
  if (toolName === tools.PanTool.toolName) return [{ mouseButton: MouseBindings.Auxiliary }, { numTouchPoints: 3 }];
  return [];
}
function restoreAlwaysOn(toolName) {
  const bindings = alwaysOn(toolName);
  if (bindings.length) toolGroup.setToolActive(toolName, { bindings });
}

async function showSeries(index) {
  state.current = index;
  const s = state.series[index];
  $("series").value = String(index);
  $("status").textContent = t.loading;
  await viewport.setStack(s.imageIds, 0);
  viewport.render();
  state.shown = index;
  updateOverlay();
  updatePanel();
}

function rotate() {
  const current = viewport.getViewPresentation().rotation || 0;
  viewport.setViewPresentation({ rotation: (current + 90) % 360 });
  viewport.render();
}
function invert() {
  const { invert } = viewport.getProperties();
  viewport.setProperties({ invert: !invert });
  viewport.render();
}
function resetView() {
  viewport.resetProperties();
  viewport.resetCamera();
  viewport.render();
}
function clearMeasurements() {
  for (const name of measurementTools()) {
    for (const a of tools.annotation.state.getAnnotations(name, $("viewport")) || []) {
      tools.annotation.state.removeAnnotation(a.annotationUID);
    }
  }
  state.calibration = null;
  viewport.render();
  updatePanel();
}

function measurementTools() {
  return [tools.LengthTool.toolName, tools.AngleTool.toolName, VHSLineTool.toolName, NorbergAngleTool.toolName, CalibrationLineTool.toolName];
}

function annotationsOf(name) {
  return (tools.annotation.state.getAnnotations(name, $("viewport")) || []).filter((a) => a.data?.handles?.points?.length);
}

function currentSeries() {
  return state.series[state.current];
}

/** mm per world unit: the user's calibration, else 1 when the image carries a pixel spacing, else null. */
function mmPerUnit() {
  if (state.calibration) return state.calibration;
  return currentSeries()?.spacing ? 1 : null;
}

function measurements() {
  const scale = mmPerUnit();
  const out = [];
  for (const a of annotationsOf(tools.LengthTool.toolName)) {
    const units = distance(a.data.handles.points[0], a.data.handles.points[1]);
    out.push({ tool: "length", uid: a.annotationUID, value: scale ? units * scale : units, unit: scale ? "mm" : "px" });
  }
  for (const a of annotationsOf(tools.AngleTool.toolName)) {
    const [p0, p1, p2] = a.data.handles.points;
    if (p2) out.push({ tool: "angle", uid: a.annotationUID, value: angleAt(p0, p1, p2), unit: "°" });
  }
  return out;
}

function vhsResult() {
  const lines = annotationsOf(VHSLineTool.toolName).map((a) => distance(a.data.handles.points[0], a.data.handles.points[1]));
  if (lines.length < 3) return { lines: lines.length };
  return { lines: 3, ...vhs({ longAxis: lines[0], shortAxis: lines[1], reference: lines[2], vertebrae: state.vertebrae, species: state.species }) };
}

function completeNorbergAngles() {
  return annotationsOf(NorbergAngleTool.toolName).filter((a) => {
    const [p0, p1, p2] = a.data.handles.points;
    return p2 && Number.isFinite(angleAt(p0, p1, p2));
  });
}

function norbergResult() {
  return completeNorbergAngles()
    .slice(0, 2)
    .map((a) => {
      const [p0, p1, p2] = a.data.handles.points;
      const angle = angleAt(p0, p1, p2);
      return { angle, verdict: norbergVerdict(angle) };
    });
}

// Both hips' angles start at the femoral head centres the other one uses: while the second angle is
// still to be drawn, the first is held still, so a press on a shared centre starts the new angle
// instead of dragging the old one's handle. Once both exist, either can be adjusted.
function holdNorbergWhileIncomplete() {
  const done = completeNorbergAngles();
  for (const a of done) tools.annotation.locking.setAnnotationLocked(a.annotationUID, done.length < 2);
}

function fmt(n, d = 1) {
  return Number.isFinite(n) ? n.toFixed(d) : "—";
}

function updatePanel() {
  const panel = $("panel"), help = $("panel-help"), inputs = $("panel-inputs"), result = $("panel-result");
  const lines = [];
  let helpText = "";
  // The inputs are made once per mode: a redraw of the results while the user types (every
  // annotation event calls here) must not wipe what they have typed.
  const rebuild = inputs.dataset.mode !== state.mode;
  if (rebuild) {
    inputs.innerHTML = "";
    inputs.dataset.mode = state.mode;
  }
  if (state.mode === "vhs") {
    helpText = t.vhsHelp;
    if (rebuild) {
      inputs.innerHTML = `<label>${t.vertebrae} <input id="vhs-n" type="number" min="1" max="12" step="1" value="${state.vertebrae}"></label>`;
      $("vhs-n").addEventListener("change", (e) => {
        const n = Number(e.target.value);
        if (n >= 1 && n <= 12) state.vertebrae = n;
        updatePanel();
      });
    }
  } else if (state.mode === "norberg") {
    helpText = t.norbergHelp;
  } else if (state.mode === "calibrate") {
    helpText = t.calibrateHelp;
    if (rebuild) {
      inputs.innerHTML = `<label>${t.knownLength} <input id="cal-mm" type="number" min="0.1" step="0.1"></label> <button id="cal-apply" type="button">${t.apply}</button>`;
      $("cal-apply").addEventListener("click", applyCalibration);
    }
  }
  const v = vhsResult();
  if (v.lines || state.mode === "vhs") {
    if (v.score != null) {
      const ranges = Object.entries(VHS_RANGES).map(([k, r]) => `${lang === "en" ? r.en : r.zh} ${r.low}–${r.high}`).join(" · ");
      const cls = v.verdict === "normal" ? "ok" : v.verdict ? "bad" : "";
      lines.push(`<div id="vhs-result">${t.long} ${fmt(v.long)} v + ${t.short} ${fmt(v.short)} v = <strong class="${cls}">VHS ${fmt(v.score)} v</strong>${v.verdict ? ` (${t[v.verdict]})` : ""}</div>`);
      lines.push(`<div class="muted">${t.ref}: ${ranges}</div>`);
    } else {
      lines.push(`<div id="vhs-result" class="muted">VHS: ${v.lines}/3</div>`);
    }
  }
  const nb = norbergResult();
  if (nb.length || state.mode === "norberg") {
    const sides = nb.map((r, i) => `${i === 0 ? t.left : t.right} <strong class="${r.verdict === "normal" ? "ok" : "bad"}">${fmt(r.angle)}°</strong> (${t[r.verdict]})`);
    lines.push(`<div id="norberg-result">Norberg: ${sides.join(" · ") || "—"} <span class="muted">${t.normal} ≥ ${NORBERG_NORMAL_MIN}°</span></div>`);
  }
  const m = measurements();
  if (m.length) {
    lines.push(`<div id="measure-result">${m.map((x) => `${x.tool === "length" ? "↔" : "∠"} ${fmt(x.value)} ${x.unit}`).join(" · ")}${state.calibration ? ` <span class="muted">(${t.calibrated})</span>` : ""}</div>`);
  }
  if (!mmPerUnit() && (m.length || ["length", "calibrate"].includes(state.mode))) {
    lines.push(`<div class="muted">${t.noSpacing}</div>`);
  }
  help.textContent = helpText;
  result.innerHTML = lines.join("");
  panel.hidden = !helpText && !lines.length;
}

function applyCalibration() {
  const known = Number($("cal-mm").value);
  const line = annotationsOf(CalibrationLineTool.toolName).at(-1);
  if (!(known > 0) || !line) return;
  const units = distance(line.data.handles.points[0], line.data.handles.points[1]);
  if (units > 0) state.calibration = known / units;
  updatePanel();
}

function updateOverlay() {
  if (!viewport) return;
  const s = currentSeries();
  const ids = viewport.getImageIds?.() || [];
  const idx = viewport.getCurrentImageIdIndex?.() ?? 0;
  const voi = viewport.getProperties().voiRange;
  const ww = voi ? voi.upper - voi.lower : NaN;
  const wl = voi ? (voi.upper + voi.lower) / 2 : NaN;
  const zoom = viewport.getZoom ? viewport.getZoom() : 1;
  $("overlay-tl").textContent = `${s ? `${s.modality} #${s.number} ${s.description}` : ""}\n${t.image} ${idx + 1}/${ids.length}`;
  $("overlay-br").textContent = `W ${fmt(ww, 0)} L ${fmt(wl, 0)}\n×${fmt(zoom, 2)}`;
}

function showPatient(instances) {
  const first = instances[0] || {};
  const pn = tag(first, "00100010");
  const animal = text(pn).split("^").pop() || text(pn);
  const species = text(tag(first, "00102201"));
  const breed = text(tag(first, "00102292"));
  $("animal").textContent = animal || "—";
  $("species").textContent = [species, breed].filter(Boolean).join(" · ");
  state.species = speciesKind(species) || speciesKind(text(tag(first, "00102202")));
}

async function main() {
  buildToolbar();
  $("status").textContent = t.loading;
  $("back").href = state.study ? `/studies/${encodeURIComponent(state.study)}/` : "/";
  if (!state.study) {
    $("status").textContent = t.noStudy;
    return;
  }
  try {
    const [instances] = await Promise.all([loadMetadata(state.study), setUp()]);
    showPatient(instances);
    state.series = buildSeries(instances);
    const select = $("series");
    select.innerHTML = state.series
      .map((s, i) => `<option value="${i}">${t.series} ${s.number || i + 1} · ${s.modality} ${s.description} (${s.imageIds.length})</option>`)
      .join("");
    select.addEventListener("change", (e) => showSeries(Number(e.target.value)));
    if (!state.series.length) throw new Error(t.notFound);
    await showSeries(0);
    readyResolve(true);
  } catch (err) {
    $("status").textContent = (err && err.message === t.notFound ? "" : t.failed) + (err && err.message ? err.message : err);
    readyResolve(false);
  }
}

// For tests, the benchmark and embedding pages: read-only state and the measurement results.
window.vetpacsLight = {
  ready,
  state: () => {
    const voi = viewport?.getProperties().voiRange;
    return {
      series: state.current,
      shownSeries: state.shown,
      seriesCount: state.series.length,
      imageIndex: viewport?.getCurrentImageIdIndex?.() ?? 0,
      imageCount: viewport?.getImageIds?.().length ?? 0,
      windowWidth: voi ? voi.upper - voi.lower : null,
      windowCenter: voi ? (voi.upper + voi.lower) / 2 : null,
      rotation: viewport?.getViewPresentation().rotation ?? 0,
      zoom: viewport?.getZoom ? viewport.getZoom() : null,
      spacing: currentSeries()?.spacing ?? null,
      calibration: state.calibration,
      mode: state.mode,
      species: state.species,
      firstImageMs: state.firstImageAt,
      cpuRendering: cs.getShouldUseCPURendering(),
    };
  },
  measurements,
  vhs: vhsResult,
  norberg: norbergResult,
  setMode,
  showSeries,
  worldToCanvas: (p) => viewport.worldToCanvas(p),
  canvasToWorld: (p) => viewport.canvasToWorld(p),
};

main();
