// Keyboard shortcuts for the toonmatte studio (loaded into the page <head>). Keys click the studio's
// buttons by elem_id; the brush buttons drive the stroke editor (annotate/canvas.js).
(() => {
  if (window.toonmatte) return;  // Gradio may insert the <head> script twice: install the listeners once
  const KEYS = __KEYS__;  // key -> elem_id of the button to click (filled in by annotate/web/shortcuts.py)
  const canvas = () => window.toonmatteCanvas;
  const BUTTONS = {  // elem_id -> what the button does, wired here rather than as Gradio events
    "__FG__": () => canvas()?.pickBrush(0),
    "__BG__": () => canvas()?.pickBrush(1),
    "__EDGE__": () => canvas()?.pickBrush(2),
    "__BIGGER__": () => canvas()?.resizeBrush(1.5),
    "__SMALLER__": () => canvas()?.resizeBrush(1 / 1.5),
  };
  window.toonmatte = { strokes: () => canvas()?.payload() ?? "" };

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
