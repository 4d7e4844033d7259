// Keyboard shortcuts and brush helpers for the toonmatte studio (loaded into the page <head>).
// Keys click the studio's buttons by elem_id; the brush keys drive gr.ImageEditor's own toolbar
// (its Brush tool, its colour swatches and its brush-size slider), which has no public JS API.
(() => {
  if (window.toonmatte) return;  // Gradio may insert the <head> script twice: install the listeners once
  const KEYS = __KEYS__;  // key -> elem_id of the button to click (filled in by annotate/shortcuts.py)
  const EDITOR = "#__EDITOR__";
  const pause = (ms = 60) => new Promise((resolve) => setTimeout(resolve, ms));

  const editor = () => document.querySelector(EDITOR);
  const tool = (label) => editor()?.querySelector(`button[aria-label='${label}']`);
  // The editor's pop-ups (palette, size slider) close on a mousedown outside them.
  const closePopups = () => document.body.dispatchEvent(new MouseEvent("mousedown", { bubbles: true }));

  // Select the brush tool and the index-th colour of its fixed palette (0 fg, 1 bg, 2 edge).
  async function pickBrush(index) {
    const root = editor();
    if (!root) return;
    tool("Brush")?.click();
    await pause();
    let swatches = root.querySelectorAll("menu.swatch button.color");
    if (!swatches.length) {
      tool("Color")?.click();
      await pause();
      swatches = root.querySelectorAll("menu.swatch button.color");
    }
    swatches[index]?.click();
    await pause();
    closePopups();
  }

  // Grow or shrink the brush by `factor` through the editor's size slider (radius in image pixels).
  async function resizeBrush(factor) {
    const root = editor();
    if (!root) return;
    let slider = root.querySelector("input[type=range]");
    if (!slider) {
      tool("Brush Size")?.click();
      await pause();
      slider = root.querySelector("input[type=range]");
    }
    if (!slider) return;
    const now = Number(slider.value);
    const next = factor > 1 ? Math.ceil(now * factor) : Math.floor(now * factor);
    slider.value = String(Math.max(Number(slider.min) || 1, Math.min(Number(slider.max) || 100, next)));
    slider.dispatchEvent(new Event("input", { bubbles: true }));
    slider.dispatchEvent(new Event("change", { bubbles: true }));
    await pause();
    closePopups();
  }

  // One editor operation at a time: a second request while one runs is dropped (not interleaved).
  let busy = null;
  const exclusive = (operation) => (...args) => {
    if (!busy) busy = operation(...args).finally(() => { busy = null; });
    return busy;
  };
  const BUTTONS = {  // elem_id -> what the button does, wired here rather than as Gradio events
    "__FG__": exclusive(() => pickBrush(0)),
    "__BG__": exclusive(() => pickBrush(1)),
    "__EDGE__": exclusive(() => pickBrush(2)),
    "__BIGGER__": exclusive(() => resizeBrush(1.5)),
    "__SMALLER__": exclusive(() => resizeBrush(1 / 1.5)),
  };
  window.toonmatte = { pickBrush: exclusive(pickBrush), resizeBrush: exclusive(resizeBrush), busy: () => busy !== null };

  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest("button[id]") : null;
    if (button && BUTTONS[button.id]) BUTTONS[button.id]();
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const target = event.target;
    if (target && (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))) return;
    const id = KEYS[event.key.toLowerCase()] ?? KEYS[event.key];
    if (!id) return;
    const button = document.getElementById(id);
    if (!button || button.disabled) return;
    event.preventDefault();
    button.click();
  });
})();
