// Keyboard shortcuts and brush helpers for the toonmatte studio (loaded into the page <head>).
// Keys click the studio's buttons by elem_id; the brush keys drive gr.ImageEditor's own toolbar
// (its Brush tool, its colour swatches and its brush-size slider), which has no public JS API.
(() => {
  const KEYS = __KEYS__;  // key -> elem_id of the button to click (filled in by annotate/shortcuts.py)
  const EDITOR = "#__EDITOR__";
  const pause = (ms = 60) => new Promise((resolve) => setTimeout(resolve, ms));

  const editor = () => document.querySelector(EDITOR);
  const tool = (label) => editor()?.querySelector(`button[aria-label='${label}']`);

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
    tool("Color")?.click();  // close the palette again
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
    tool("Brush Size")?.click();
  }

  window.toonmatte = { pickBrush, resizeBrush };

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
