// The toonmatte studio's stroke editor (see annotate/canvas.py): a canvas over the tinted image.
// Paint with the left button; zoom with the wheel; pan by dragging with the right or middle button
// (or the left one while Space is held); Ctrl+Z undoes a stroke, Ctrl+Shift+Z redoes it.
(() => {
  if (window.toonmatteCanvas) return;  // Gradio may insert the <head> script twice
  const BRUSHES = __BRUSHES__;  // [[name, colour], ...]: foreground, background, edge
  const state = { brush: 0, radius: null, strokes: [], undone: [], stage: null, canvas: null,
                  zoom: 1, pan: [0, 0], stem: null, painting: null, panning: null, space: false };

  const size = () => [Number(state.stage.dataset.width), Number(state.stage.dataset.height)];
  const defaultRadius = ([w, h]) => Math.max(2, Math.round(Math.max(w, h) / 100));

  function view() {  // fit the image in the stage, then apply zoom and pan
    if (!state.stage) return;
    const [w, h] = size();
    const box = state.stage.getBoundingClientRect();
    const fit = Math.min(box.width / w, box.height / h) || 1;
    const scale = fit * state.zoom;
    const x = (box.width - w * scale) / 2 + state.pan[0], y = (box.height - h * scale) / 2 + state.pan[1];
    const el = state.stage.querySelector(".tm-view");
    el.style.width = `${w}px`;
    el.style.height = `${h}px`;
    el.style.transform = `translate(${x}px, ${y}px) scale(${scale})`;
    status();
  }

  function status() {
    const el = state.stage?.querySelector(".tm-status");
    if (el) el.textContent = `${BRUSHES[state.brush][0]} brush · radius ${state.radius} px · zoom ${Math.round(state.zoom * 100)}%`
      + (state.strokes.length ? ` · ${state.strokes.length} stroke${state.strokes.length > 1 ? "s" : ""} not applied` : "");
  }

  function setup(stage) {  // a new matte arrived: fresh strokes on a fresh canvas
    stage.dataset.ready = "1";
    const [w, h] = [Number(stage.dataset.width), Number(stage.dataset.height)];
    const canvas = document.createElement("canvas");
    canvas.className = "tm-strokes";
    canvas.width = w;
    canvas.height = h;
    stage.querySelector(".tm-view").appendChild(canvas);
    const same = state.stem === stage.dataset.stem && state.canvas && state.canvas.width === w && state.canvas.height === h;
    if (!same) { state.zoom = 1; state.pan = [0, 0]; state.radius = defaultRadius([w, h]); }
    state.stem = stage.dataset.stem;
    Object.assign(state, { stage, canvas, strokes: [], undone: [], painting: null });
    view();
  }

  const observer = new MutationObserver(() => {
    const stage = document.querySelector(".tm-stage:not([data-ready])");
    if (stage) setup(stage);
    else if (state.stage && !state.stage.isConnected) state.stage = state.canvas = null;
  });
  const start = () => observer.observe(document.body, { childList: true, subtree: true });
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
  window.addEventListener("resize", view);

  function point(event) {  // canvas pixel under the pointer
    const box = state.canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * state.canvas.width / box.width,
            (event.clientY - box.top) * state.canvas.height / box.height];
  }

  function draw(ctx, stroke, from = 0) {
    ctx.fillStyle = ctx.strokeStyle = BRUSHES[stroke.brush][1];
    ctx.lineWidth = 2 * stroke.radius;
    ctx.lineCap = ctx.lineJoin = "round";
    const pts = stroke.points;
    if (pts.length === 1) {
      ctx.beginPath();
      ctx.arc(pts[0][0], pts[0][1], stroke.radius, 0, 2 * Math.PI);
      ctx.fill();
      return;
    }
    ctx.beginPath();
    ctx.moveTo(...pts[Math.max(0, from - 1)]);
    for (let i = Math.max(1, from); i < pts.length; i++) ctx.lineTo(...pts[i]);
    ctx.stroke();
  }

  function redraw() {
    const ctx = state.canvas.getContext("2d");
    ctx.clearRect(0, 0, state.canvas.width, state.canvas.height);
    for (const stroke of state.strokes) draw(ctx, stroke);
    status();
  }

  document.addEventListener("pointerdown", (event) => {
    if (!state.canvas || !state.stage.contains(event.target)) return;
    event.preventDefault();
    if (event.button === 1 || event.button === 2 || (event.button === 0 && state.space)) {
      state.panning = { x: event.clientX, y: event.clientY, pan: [...state.pan] };
    } else if (event.button === 0) {
      const stroke = { brush: state.brush, radius: state.radius, points: [point(event)] };
      state.painting = stroke;
      state.strokes.push(stroke);
      state.undone = [];
      draw(state.canvas.getContext("2d"), stroke);
    }
  });
  document.addEventListener("pointermove", (event) => {
    if (state.painting) {
      state.painting.points.push(point(event));
      draw(state.canvas.getContext("2d"), state.painting, state.painting.points.length - 1);
    } else if (state.panning) {
      state.pan = [state.panning.pan[0] + event.clientX - state.panning.x, state.panning.pan[1] + event.clientY - state.panning.y];
      view();
    }
  });
  document.addEventListener("pointerup", () => {
    if (state.painting) status();
    state.painting = state.panning = null;
  });
  document.addEventListener("contextmenu", (event) => { if (state.stage?.contains(event.target)) event.preventDefault(); });
  document.addEventListener("wheel", (event) => {
    if (!state.stage || !state.stage.contains(event.target)) return;
    event.preventDefault();
    const box = state.stage.getBoundingClientRect();
    const factor = Math.exp(-event.deltaY / 500);
    const zoom = Math.min(32, Math.max(1, state.zoom * factor));
    const k = zoom / state.zoom;  // keep the point under the cursor where it is
    const cx = event.clientX - box.left - box.width / 2, cy = event.clientY - box.top - box.height / 2;
    state.pan = [cx - (cx - state.pan[0]) * k, cy - (cy - state.pan[1]) * k];
    if (zoom === 1) state.pan = [0, 0];
    state.zoom = zoom;
    view();
  }, { passive: false });
  const typing = (target) => target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
  document.addEventListener("keydown", (event) => {
    if (typing(event.target)) return;
    if (event.key === " ") { state.space = true; if (state.stage) event.preventDefault(); }
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
      event.preventDefault();
      event.shiftKey ? api.redo() : api.undo();
    }
  });
  document.addEventListener("keyup", (event) => { if (event.key === " ") state.space = false; });

  const api = {
    pickBrush(index) { state.brush = index; status(); },
    resizeBrush(factor) {
      if (!state.radius) return;
      const [w, h] = state.stage ? size() : [4096, 4096];
      const next = factor > 1 ? Math.ceil(state.radius * factor) : Math.floor(state.radius * factor);
      state.radius = Math.max(1, Math.min(Math.round(Math.max(w, h) / 4), next));
      status();
    },
    brush: () => ({ name: BRUSHES[state.brush][0], colour: BRUSHES[state.brush][1], radius: state.radius }),
    undo() { if (state.strokes.length && state.canvas) { state.undone.push(state.strokes.pop()); redraw(); } },
    redo() { if (state.undone.length && state.canvas) { state.strokes.push(state.undone.pop()); redraw(); } },
    // The strokes for an event: the painted pixels' bounding box as a PNG, with its offset and the
    // canvas size (JSON text; "" when nothing is painted). The canvas keeps them until a new matte arrives.
    payload() {
      if (!state.canvas || !state.strokes.length) return "";
      const [w, h] = size();
      let [x0, y0, x1, y1] = [w, h, 0, 0];
      for (const { radius, points } of state.strokes) {
        for (const [x, y] of points) {
          x0 = Math.min(x0, x - radius); y0 = Math.min(y0, y - radius);
          x1 = Math.max(x1, x + radius); y1 = Math.max(y1, y + radius);
        }
      }
      x0 = Math.max(0, Math.floor(x0) - 1); y0 = Math.max(0, Math.floor(y0) - 1);
      x1 = Math.min(w, Math.ceil(x1) + 1); y1 = Math.min(h, Math.ceil(y1) + 1);
      if (x1 <= x0 || y1 <= y0) return "";
      const crop = document.createElement("canvas");
      crop.width = x1 - x0;
      crop.height = y1 - y0;
      crop.getContext("2d").drawImage(state.canvas, x0, y0, crop.width, crop.height, 0, 0, crop.width, crop.height);
      return JSON.stringify({ width: w, height: h, x: x0, y: y0, png: crop.toDataURL("image/png") });
    },
  };
  window.toonmatteCanvas = api;
})();
