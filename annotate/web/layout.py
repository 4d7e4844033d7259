"""The studio page's components and where they sit; what they do is wired in ``annotate.web.events``.

``build_layout`` places every component (inside the caller's ``gr.Blocks``) and returns them in a
``Layout``, so the events module refers to them by role. The ``elem_id`` values are what the
keyboard shortcuts (``annotate.web.shortcuts``), the browser tests and API clients find them by.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from annotate import preview
from annotate.canvas import EMPTY_STAGE
from annotate.desk import ORDERS
from annotate.studio import Studio
from annotate.web.quality_tab import QualityTab, quality_tab
from annotate.web.shortcuts import EDITOR_ID, help_markdown
from toonmatte.dataset import STATUSES

TEAM_BATCH = 10
"""Images one press of "Take from the team queue" claims."""
EDITOR_HEIGHT = 580
PREVIEW_HEIGHT = 330
"""Editor and previews side by side fit a 1400x1000 window, so the result of Apply shows without scrolling."""
LEGEND = ("<small>The **magenta tint** marks what the matte removes (alpha 0: full tint; soft edges: partial "
          "tint). Paint over mistakes, then **Apply**; nothing changes until you do. Wheel: zoom; right-drag: "
          "pan; Ctrl+Z: undo a stroke.</small>")
CSS = """
#engine-banner.fallback { background: #fff4d6; border: 1px solid #e0b100; border-radius: 8px; padding: 4px 12px; }
#engine-banner.fallback p { color: #5c4500; }
.brush-fg { border-left: 8px solid #00ff00 !important; }
.brush-bg { border-left: 8px solid #ff0000 !important; }
.brush-edge { border-left: 8px solid #0000ff !important; }
"""


@dataclass
class Layout:
    """The components events read or update, named by role (the brush buttons and legends, which only
    the browser's scripts drive, are placed but not kept)."""

    banner: gr.Markdown
    sync: gr.Markdown
    who: gr.Markdown
    item_state: gr.State
    stems_state: gr.State
    tabs: gr.Tabs
    # Correct: the queue
    uploads: gr.File
    folder: gr.Textbox
    load: gr.Button
    take: gr.Button
    progress: gr.Markdown
    order_by: gr.Dropdown
    leave_out_sure: gr.Checkbox
    sort: gr.Button
    previous: gr.Button
    skip: gr.Button
    save_next: gr.Button
    review_box: gr.Accordion
    review_comment: gr.Textbox
    approve: gr.Button
    send_back: gr.Button
    # Correct: preview and downloads
    background: gr.Radio
    custom: gr.ColorPicker
    decontaminate: gr.Checkbox
    download_rgba: gr.DownloadButton
    download_mask: gr.DownloadButton
    # Correct: the editor
    editor: gr.HTML
    strokes: gr.Textbox
    apply: gr.Button
    snap: gr.Button
    reset: gr.Button
    save: gr.Button
    shown: gr.Image
    slider: gr.ImageSlider
    # Browse, Quality, Try it
    browse_tab: gr.Tab
    status_filter: gr.Dropdown
    refresh: gr.Button
    gallery: gr.Gallery
    quality: QualityTab
    try_files: gr.File
    try_url: gr.Textbox
    try_go: gr.Button
    try_zip: gr.DownloadButton
    try_gallery: gr.Gallery
    # hidden components behind the named API endpoints
    api_image: gr.File
    api_mask: gr.File
    api_cutout: gr.File
    api_alpha: gr.File
    api_stem: gr.Textbox
    api_matte_button: gr.Button
    api_save_button: gr.Button

    @property
    def views(self) -> list[gr.components.Component]:
        """The preview and the before/after slider."""
        return [self.shown, self.slider]

    @property
    def downloads(self) -> list[gr.components.Component]:
        return [self.download_rgba, self.download_mask]

    @property
    def shows(self) -> list[gr.components.Component]:
        """What showing an item updates: the item, the editor, the views, the downloads, the progress line."""
        return [self.item_state, self.editor, *self.views, *self.downloads, self.progress]

    @property
    def look(self) -> list[gr.components.Component]:
        """The preview settings every showing event reads."""
        return [self.background, self.custom, self.decontaminate]


def build_layout(studio: Studio) -> Layout:
    """Place the page's components (call inside ``gr.Blocks``); which are shown depends on ``studio``
    (sign-in, a team queue, a Hub sync, server folders)."""
    c: dict[str, object] = {}
    gr.Markdown("# toonmatte studio\nPreview ToonOut mattes, fix them with brushes, and save im/gt/an triples.")
    c["banner"] = gr.Markdown("Loading the matting engine...", elem_id="engine-banner")
    c["sync"] = gr.Markdown(studio.sync_line() if studio.sync_line else "", elem_id="sync",
                            visible=studio.sync_line is not None)
    with gr.Row():
        c["who"] = gr.Markdown("", elem_id="who")
        if studio.access.oauth:
            gr.LoginButton(size="sm", scale=0, min_width=200)
    c["item_state"] = gr.State(None)
    c["stems_state"] = gr.State([])
    with gr.Tabs(selected="correct") as c["tabs"]:
        with gr.Tab("Correct", id="correct"):
            with gr.Row():
                with gr.Column(scale=1, min_width=250):
                    _queue_column(studio, c)
                with gr.Column(scale=3, min_width=420):
                    _editor_column(c)
                with gr.Column(scale=2, min_width=300):
                    c["shown"] = gr.Image(label="Preview", type="filepath", interactive=False,
                                          elem_id="preview", height=PREVIEW_HEIGHT)
                    c["slider"] = gr.ImageSlider(label="Before / after", type="filepath", interactive=False,
                                                 elem_id="before-after", max_height=PREVIEW_HEIGHT)
        with gr.Tab("Browse", id="browse") as c["browse_tab"]:
            with gr.Row():
                c["status_filter"] = gr.Dropdown(["all", *STATUSES], value="all", label="Status",
                                                 elem_id="status-filter")
                c["refresh"] = gr.Button("Refresh", elem_id="refresh")
            c["gallery"] = gr.Gallery(label="Saved and queued items (click to reopen)", columns=6, height=640,
                                      object_fit="contain", allow_preview=False, format="png", elem_id="gallery")
        c["quality"] = quality_tab(studio)
        with gr.Tab("Try it", id="try"):
            gr.Markdown("Matte your own images: nothing is stored, and the cut-outs can be downloaded.")
            with gr.Row():
                c["try_files"] = gr.File(label="Images", file_count="multiple", file_types=["image"],
                                         elem_id="try-files", height=140)
                with gr.Column():
                    c["try_url"] = gr.Textbox(label="...or an image link", placeholder="https://...",
                                              elem_id="try-url")
                    c["try_go"] = gr.Button("Matte", variant="primary", elem_id="try-go")
                    c["try_zip"] = gr.DownloadButton("Download all (zip)", elem_id="try-zip")
            c["try_gallery"] = gr.Gallery(label="Cut-outs", columns=4, height=480, object_fit="contain",
                                          format="png", elem_id="try-gallery")
    with gr.Row(visible=False):
        c["api_image"] = gr.File(label="image", type="filepath")
        c["api_mask"] = gr.File(label="mask", type="filepath")
        c["api_cutout"] = gr.File(label="cut-out (RGBA PNG)")
        c["api_alpha"] = gr.File(label="mask (8-bit PNG)")
        c["api_stem"] = gr.Textbox(label="stem")
        c["api_matte_button"] = gr.Button("matte")
        c["api_save_button"] = gr.Button("save")
    return Layout(**c)  # type: ignore[arg-type]


def _queue_column(studio: Studio, c: dict[str, object]) -> None:
    """Loading, ordering and moving through the queue, review, shortcuts, preview settings and downloads."""
    c["uploads"] = gr.File(label="Images or a zip", file_count="multiple", file_types=["image", ".zip"],
                           elem_id="uploads", height=140)
    c["folder"] = gr.Textbox(label="...or a folder on the server", placeholder="/path/to/images",
                             visible=studio.allow_server_paths, elem_id="folder")
    c["load"] = gr.Button("Load", elem_id="load-queue")
    c["take"] = gr.Button(f"Take {TEAM_BATCH} from the team queue", elem_id="take-team-work",
                          visible=studio.team is not None)
    c["progress"] = gr.Markdown("", elem_id="progress")
    with gr.Accordion("Order", open=False):
        c["order_by"] = gr.Dropdown(list(ORDERS), value=ORDERS[0], label="Order the queue by", elem_id="order-by")
        c["leave_out_sure"] = gr.Checkbox(False, label="Leave out what the model is sure of",
                                          elem_id="leave-out-sure")
        c["sort"] = gr.Button("Sort the queue", size="sm", elem_id="sort-queue")
    with gr.Row():
        c["previous"] = gr.Button("Previous (P)", elem_id="previous", size="sm")
        c["skip"] = gr.Button("Skip (N)", elem_id="skip", size="sm")
    c["save_next"] = gr.Button("Save & next (S)", elem_id="save-next", variant="primary")
    with gr.Accordion("Review", open=False, visible=not studio.access.sign_in, elem_id="review") as c["review_box"]:
        c["review_comment"] = gr.Textbox(label="Comment (what to fix)", lines=2, elem_id="review-comment")
        with gr.Row():
            c["approve"] = gr.Button("Approve", size="sm", elem_id="approve")
            c["send_back"] = gr.Button("Send back", size="sm", elem_id="send-back")
    with gr.Accordion("Keyboard shortcuts", open=False):
        gr.Markdown(help_markdown())
    with gr.Accordion("Preview and downloads", open=True):
        c["background"] = gr.Radio(list(preview.BACKGROUNDS), value=preview.CHECKERBOARD,
                                   label="Preview background", elem_id="preview-background")
        c["custom"] = gr.ColorPicker("#3a7bd5", label="Custom colour", elem_id="custom-colour")
        c["decontaminate"] = gr.Checkbox(True, label="Decontaminate edge colours", elem_id="decontaminate")
        c["download_rgba"] = gr.DownloadButton("Download cut-out (RGBA PNG)", elem_id="download-rgba")
        c["download_mask"] = gr.DownloadButton("Download mask (PNG)", elem_id="download-mask")


def _editor_column(c: dict[str, object]) -> None:
    """The stroke editor, its legend, the brush buttons and the stroke actions."""
    c["editor"] = gr.HTML(EMPTY_STAGE, elem_id=EDITOR_ID, min_height=EDITOR_HEIGHT,
                          label="Paint: green = subject, red = background, blue = soft edge to re-solve",
                          show_label=True, container=True, js_on_load=None)
    c["strokes"] = gr.Textbox(visible=False)  # filled by events.STROKES_JS when an event needs them
    gr.Markdown(LEGEND, elem_id="editor-legend")
    with gr.Row():  # wired in the browser by annotate/web/shortcuts.js (they drive the editor's toolbar)
        gr.Button("Foreground (F)", elem_id="brush-fg", elem_classes="brush-fg", size="sm", min_width=60)
        gr.Button("Background (B)", elem_id="brush-bg", elem_classes="brush-bg", size="sm", min_width=60)
        gr.Button("Edge (E)", elem_id="brush-edge", elem_classes="brush-edge", size="sm", min_width=60)
        gr.Button("Smaller ([)", elem_id="brush-smaller", size="sm", min_width=60)
        gr.Button("Bigger (])", elem_id="brush-bigger", size="sm", min_width=60)
    with gr.Row():
        c["apply"] = gr.Button("Apply strokes (A)", elem_id="apply", size="sm", min_width=60)
        c["snap"] = gr.Button("Snap (G)", elem_id="snap", size="sm", min_width=60)
        c["reset"] = gr.Button("Reset to prediction", elem_id="reset", size="sm", min_width=60)
        c["save"] = gr.Button("Save", elem_id="save", size="sm", min_width=60)
