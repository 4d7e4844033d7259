"""The studio's Gradio page: ``build_app`` puts the layout (``annotate.web.layout``) and its events
(``annotate.web.events``) together over one ``annotate.studio.Studio``; ``launch_kwargs`` gives the
page-level options Gradio takes at launch."""
from __future__ import annotations

from typing import Any

import gradio as gr

from annotate import canvas
from annotate.studio import Studio
from annotate.web.events import ENGINE, wire_events
from annotate.web.layout import CSS, EDITOR_HEIGHT, build_layout
from annotate.web.shortcuts import EDITOR_ID

__all__ = ["ENGINE", "build_app", "launch_kwargs"]


def build_app(studio: Studio) -> gr.Blocks:
    """The studio's Blocks; launch it with ``launch_kwargs``' css/head (Gradio 6 takes them in ``launch``)."""
    with gr.Blocks(title="toonmatte studio", delete_cache=(3600, 24 * 3600)) as demo:
        wire_events(studio, build_layout(studio), demo)
    return demo


def launch_kwargs() -> dict[str, Any]:
    """Page-level options that Gradio 6 takes in ``launch``: the stylesheet, the shortcut and editor scripts."""
    from annotate.web import shortcuts

    return {"css": CSS + f"#{EDITOR_ID} {{ --tm-editor-height: {EDITOR_HEIGHT}px; }}\n",
            "head": shortcuts.head() + "\n" + canvas.head()}
