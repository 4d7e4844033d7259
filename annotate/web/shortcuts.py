"""Keyboard shortcuts of the studio: which key clicks which button, and the ``<head>`` script doing it."""
from __future__ import annotations

import json
from pathlib import Path

EDITOR_ID = "editor"
BRUSH_BUTTONS = {"__FG__": "brush-fg", "__BG__": "brush-bg", "__EDGE__": "brush-edge",
                 "__BIGGER__": "brush-bigger", "__SMALLER__": "brush-smaller"}
"""Placeholders in shortcuts.js -> elem_id of the brush buttons it wires up (they have no Gradio events)."""

# (key, elem_id of the button it clicks, what it does); the ids are the buttons' elem_id in
# annotate/web/layout.py.
SHORTCUTS: tuple[tuple[str, str, str], ...] = (
    ("s", "save-next", "save and go to the next image"),
    ("p", "previous", "previous image"),
    ("n", "skip", "skip this image (next, without saving)"),
    ("f", "brush-fg", "foreground brush (alpha 255)"),
    ("b", "brush-bg", "background brush (alpha 0)"),
    ("e", "brush-edge", "edge brush (re-solve soft edges)"),
    ("]", "brush-bigger", "bigger brush"),
    ("[", "brush-smaller", "smaller brush"),
    ("a", "apply", "apply the strokes"),
    ("g", "snap", "snap the strokes to a clean region (GrabCut)"),
)


def head() -> str:
    """The ``<script>`` for ``launch(head=...)``: key handling, and ``window.toonmatte.strokes()`` for events."""
    source = (Path(__file__).with_name("shortcuts.js").read_text(encoding="utf-8")
              .replace("__KEYS__", json.dumps({key: elem_id for key, elem_id, _ in SHORTCUTS})))
    for placeholder, elem_id in BRUSH_BUTTONS.items():
        source = source.replace(placeholder, elem_id)
    return f"<script>\n{source}</script>"


def help_markdown() -> str:
    """The shortcut table shown in the studio."""
    rows = "\n".join(f"| `{key}` | {what} |" for key, _, what in SHORTCUTS)
    return ("| key | action |\n|---|---|\n" + rows +
            "\n\n`Ctrl+Z` / `Ctrl+Shift+Z` undo / redo a stroke; the mouse wheel zooms; drag with the right "
            "button (or hold `Space`) to pan. Shortcuts are ignored while typing in a text field.")
