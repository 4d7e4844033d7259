"""The studio's Gradio Blocks: layout and short event handlers over ``annotate.studio.Studio``.

The stroke editor is ``annotate.web.canvas`` (a ``gr.HTML`` stage and its script): strokes reach the
server only when a button is pressed, as the painted pixels' crop in a hidden textbox that the
event's ``js`` fills (``STROKES_JS``).

Handlers return files written by ``studio.renderer`` (the editor's PNG re-encoded only where the
matte changed, previews at preview size), not arrays for Gradio to encode. The full-resolution
download files are written by a step chained after each event, so the editor and the previews
come back first; until that step is done the download buttons hold no file (never a stale one).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gradio as gr

from annotate import preview
from annotate.access import person_of
from annotate.desk import ORDERS, Desk, Step
from annotate.editing import Item
from annotate.studio import Studio
from annotate.tryit import fetch_url, matte_many
from annotate.web import canvas
from annotate.web.canvas import EMPTY_STAGE
from annotate.web.quality_tab import quality_tab, selected_stem
from annotate.web.shortcuts import EDITOR_ID, help_markdown
from toonmatte.dataset import STATUSES, uniform_alpha_warning
from toonmatte.errors import ToonmatteError

ENGINE = "engine"
"""Concurrency group of every event that may run the model: one at a time (the GPU is shared)."""
SYNC_REFRESH = 15.0
"""Seconds between refreshes of the Hub sync's status line."""
TEAM_BATCH = 10
"""Images one press of "Take from the team queue" claims."""
EDITOR_HEIGHT = 580
PREVIEW_HEIGHT = 330
"""Editor and previews side by side fit a 1400x1000 window, so the result of Apply shows without scrolling."""
LEGEND = ("<small>The **magenta tint** marks what the matte removes (alpha 0: full tint; soft edges: partial "
          "tint). Paint over mistakes, then **Apply**; nothing changes until you do. Wheel: zoom; right-drag: "
          "pan; Ctrl+Z: undo a stroke.</small>")
STROKES_JS = "(...values) => { values[1] = window.toonmatte.strokes(); return values; }"
"""An event's ``js``: its second input (the hidden strokes textbox) gets the editor's painted strokes."""
CSS = """
#engine-banner.fallback { background: #fff4d6; border: 1px solid #e0b100; border-radius: 8px; padding: 4px 12px; }
#engine-banner.fallback p { color: #5c4500; }
.brush-fg { border-left: 8px solid #00ff00 !important; }
.brush-bg { border-left: 8px solid #ff0000 !important; }
.brush-edge { border-left: 8px solid #0000ff !important; }
"""


def _friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a ``ToonmatteError`` into a ``gr.Error`` with its one sentence (no traceback), keeping the page usable.

    ``functools.wraps`` keeps the signature visible, so Gradio still injects ``gr.SelectData`` and the like.
    """
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ToonmatteError as error:
            raise gr.Error(str(error), print_exception=False) from None
    return wrapper


def build_app(studio: Studio) -> gr.Blocks:
    """The studio's Blocks; launch it with ``launch_kwargs``' css/head (Gradio 6 takes them in ``launch``)."""
    with gr.Blocks(title="toonmatte studio", delete_cache=(3600, 24 * 3600)) as demo:
        gr.Markdown("# toonmatte studio\nPreview ToonOut mattes, fix them with brushes, and save im/gt/an triples.")
        banner = gr.Markdown("Loading the matting engine...", elem_id="engine-banner")
        sync = gr.Markdown(studio.sync_line() if studio.sync_line else "", elem_id="sync",
                           visible=studio.sync_line is not None)
        with gr.Row():
            who = gr.Markdown("", elem_id="who")
            if studio.access.oauth:
                gr.LoginButton(size="sm", scale=0, min_width=200)
        item_state = gr.State(None)
        stems_state = gr.State([])

        with gr.Tabs(selected="correct") as tabs:
            with gr.Tab("Correct", id="correct"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=250):
                        uploads = gr.File(label="Images or a zip", file_count="multiple",
                                          file_types=["image", ".zip"], elem_id="uploads", height=140)
                        folder = gr.Textbox(label="...or a folder on the server", placeholder="/path/to/images",
                                            visible=studio.allow_server_paths, elem_id="folder")
                        load = gr.Button("Load", elem_id="load-queue")
                        take = gr.Button(f"Take {TEAM_BATCH} from the team queue", elem_id="take-team-work",
                                         visible=studio.team is not None)
                        progress = gr.Markdown("", elem_id="progress")
                        with gr.Accordion("Order", open=False):
                            order_by = gr.Dropdown(list(ORDERS), value=ORDERS[0], label="Order the queue by",
                                                   elem_id="order-by")
                            leave_out_sure = gr.Checkbox(False, label="Leave out what the model is sure of",
                                                         elem_id="leave-out-sure")
                            sort = gr.Button("Sort the queue", size="sm", elem_id="sort-queue")
                        with gr.Row():
                            previous = gr.Button("Previous (P)", elem_id="previous", size="sm")
                            skip = gr.Button("Skip (N)", elem_id="skip", size="sm")
                        save_next = gr.Button("Save & next (S)", elem_id="save-next", variant="primary")
                        with gr.Accordion("Review", open=False, visible=not studio.access.sign_in,
                                          elem_id="review") as review_box:
                            review_comment = gr.Textbox(label="Comment (what to fix)", lines=2, elem_id="review-comment")
                            with gr.Row():
                                approve = gr.Button("Approve", size="sm", elem_id="approve")
                                send_back = gr.Button("Send back", size="sm", elem_id="send-back")
                        with gr.Accordion("Keyboard shortcuts", open=False):
                            gr.Markdown(help_markdown())
                        with gr.Accordion("Preview and downloads", open=True):
                            background = gr.Radio(list(preview.BACKGROUNDS), value=preview.CHECKERBOARD,
                                                  label="Preview background", elem_id="preview-background")
                            custom = gr.ColorPicker("#3a7bd5", label="Custom colour", elem_id="custom-colour")
                            decontaminate = gr.Checkbox(True, label="Decontaminate edge colours", elem_id="decontaminate")
                            download_rgba = gr.DownloadButton("Download cut-out (RGBA PNG)", elem_id="download-rgba")
                            download_mask = gr.DownloadButton("Download mask (PNG)", elem_id="download-mask")
                    with gr.Column(scale=3, min_width=420):
                        editor = gr.HTML(EMPTY_STAGE, elem_id=EDITOR_ID, min_height=EDITOR_HEIGHT,
                                         label="Paint: green = subject, red = background, blue = soft edge to re-solve",
                                         show_label=True, container=True, js_on_load=None)
                        strokes = gr.Textbox(visible=False)  # filled by STROKES_JS when an event needs them
                        gr.Markdown(LEGEND, elem_id="editor-legend")
                        with gr.Row():  # wired in the browser by annotate/web/shortcuts.js (they drive the editor's toolbar)
                            gr.Button("Foreground (F)", elem_id="brush-fg", elem_classes="brush-fg", size="sm", min_width=60)
                            gr.Button("Background (B)", elem_id="brush-bg", elem_classes="brush-bg", size="sm", min_width=60)
                            gr.Button("Edge (E)", elem_id="brush-edge", elem_classes="brush-edge", size="sm", min_width=60)
                            gr.Button("Smaller ([)", elem_id="brush-smaller", size="sm", min_width=60)
                            gr.Button("Bigger (])", elem_id="brush-bigger", size="sm", min_width=60)
                        with gr.Row():
                            apply = gr.Button("Apply strokes (A)", elem_id="apply", size="sm", min_width=60)
                            snap = gr.Button("Snap (G)", elem_id="snap", size="sm", min_width=60)
                            reset = gr.Button("Reset to prediction", elem_id="reset", size="sm", min_width=60)
                            save = gr.Button("Save", elem_id="save", size="sm", min_width=60)
                    with gr.Column(scale=2, min_width=300):
                        shown = gr.Image(label="Preview", type="filepath", interactive=False,
                                         elem_id="preview", height=PREVIEW_HEIGHT)
                        slider = gr.ImageSlider(label="Before / after", type="filepath",
                                                interactive=False, elem_id="before-after", max_height=PREVIEW_HEIGHT)
            with gr.Tab("Browse", id="browse") as browse_tab:
                with gr.Row():
                    status_filter = gr.Dropdown(["all", *STATUSES], value="all", label="Status", elem_id="status-filter")
                    refresh = gr.Button("Refresh", elem_id="refresh")
                gallery = gr.Gallery(label="Saved and queued items (click to reopen)", columns=6, height=640,
                                     object_fit="contain", allow_preview=False, format="png", elem_id="gallery")
            quality = quality_tab(studio)
            with gr.Tab("Try it", id="try"):
                gr.Markdown("Matte your own images: nothing is stored, and the cut-outs can be downloaded.")
                with gr.Row():
                    try_files = gr.File(label="Images", file_count="multiple", file_types=["image"],
                                        elem_id="try-files", height=140)
                    with gr.Column():
                        try_url = gr.Textbox(label="...or an image link", placeholder="https://...", elem_id="try-url")
                        try_go = gr.Button("Matte", variant="primary", elem_id="try-go")
                        try_zip = gr.DownloadButton("Download all (zip)", elem_id="try-zip")
                try_gallery = gr.Gallery(label="Cut-outs", columns=4, height=480, object_fit="contain",
                                         format="png", elem_id="try-gallery")

        # Hidden components behind the named API endpoints.
        with gr.Row(visible=False):
            api_image = gr.File(label="image", type="filepath")
            api_mask = gr.File(label="mask", type="filepath")
            api_cutout = gr.File(label="cut-out (RGBA PNG)")
            api_alpha = gr.File(label="mask (8-bit PNG)")
            api_stem = gr.Textbox(label="stem")
            api_matte_button = gr.Button("matte")
            api_save_button = gr.Button("save")

        views = [shown, slider]
        downloads = [download_rgba, download_mask]
        shows = [item_state, editor, *views, *downloads, progress]
        no_files = [None, None]  # empty download buttons (plain values: an update would make Gradio rebuild their config)

        def render_views(item: Item | None, choice: str, colour: str, clean: bool) -> list[Any]:
            if item is None:
                return [None, None]
            view, pair = studio.renderer.views(item, choice, colour, clean)
            return [view, pair]

        def on_downloads(item: Item | None, clean: bool) -> list[Any]:
            """The download buttons' files for the current matte (chained after every event that shows one)."""
            if item is None:
                return no_files
            return list(studio.downloads(item, clean))

        def show(step: Step, current: Item | None, choice: str, colour: str, clean: bool, desk: Desk) -> list[Any]:
            """Outputs for ``shows``: the step's item (or the unchanged current one), with its toasts."""
            for message in step.warnings:
                gr.Warning(message)
            if step.info:
                gr.Info(step.info)
            if step.item is None:
                return [current, gr.skip(), *[gr.skip()] * (len(views) + len(downloads)), desk.progress_line(current)]
            return [step.item, studio.renderer.editor(step.item), *render_views(step.item, choice, colour, clean),
                    *no_files, desk.progress_line(step.item)]

        def desk_of(request: gr.Request, profile: gr.OAuthProfile | None) -> Desk:
            """The desk of the person behind an event (a one-sentence error for someone who may not save)."""
            return studio.desk(person_of(request, profile))

        look = [background, custom, decontaminate]

        @_friendly
        def on_load(files, path, current, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None):
            desk = desk_of(request, profile)
            return show(desk.load(files, path, current), current, choice, colour, clean, desk)

        @_friendly
        def on_take(current, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None):
            desk = desk_of(request, profile)
            return show(desk.take_team_work(TEAM_BATCH, current), current, choice, colour, clean, desk)

        def on_review(approved: bool):
            @_friendly
            def handler(current, comment, request: gr.Request, profile: gr.OAuthProfile | None):
                gr.Info(studio.review(person_of(request, profile), current, approved, comment or ""))
                desk = desk_of(request, profile)
                return desk.progress_line(current), ""
            handler.__name__ = "on_approve" if approved else "on_send_back"
            return handler

        @_friendly
        def on_sort(by, leave_out, current, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None):
            desk = desk_of(request, profile)
            return show(desk.order(by, leave_out, current), current, choice, colour, clean, desk)

        def on_move(action: str):
            @_friendly
            def handler(current, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None):
                desk = desk_of(request, profile)
                return show(desk.move(action, current), current, choice, colour, clean, desk)
            handler.__name__ = f"on_{action}"
            return handler

        def painted(current: Item | None, payload: str | None) -> dict | None:
            """The editor's strokes for the item on screen (their canvas is its ``editor_size``)."""
            return None if current is None else canvas.editor_value(payload, current.editor_size())

        @_friendly
        def on_save_next(current, payload, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None):
            desk = desk_of(request, profile)
            return show(desk.save_and_next(current, painted(current, payload)), current, choice, colour, clean, desk)

        @_friendly
        def on_save(current, payload, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None):
            desk = desk_of(request, profile)
            overlap = desk.overlap_warning(current)
            item, stem = desk.save(current, painted(current, payload))
            warnings = [message for message in (overlap, uniform_alpha_warning(item.alpha)) if message is not None]
            return show(Step(item, warnings=warnings, info=f"Saved {stem}."), current, choice, colour, clean, desk)

        def on_strokes(how: str):
            @_friendly
            def handler(current, payload, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None):
                desk = desk_of(request, profile)
                item, any_painted = desk.apply(current, painted(current, payload), how)
                if not any_painted:
                    gr.Warning("Nothing is painted yet: pick a brush (F, B or E) and paint on the image first.")
                    return show(Step(None), current, choice, colour, clean, desk)
                return show(Step(item), current, choice, colour, clean, desk)
            handler.__name__ = f"on_{how}"
            return handler

        @_friendly
        def on_reset(current, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None):
            if current is None:
                raise ToonmatteError("There is no image to reset; load images first.")
            desk = desk_of(request, profile)
            return show(Step(current.with_alpha(current.predicted)), current, choice, colour, clean, desk)

        @_friendly
        def on_look(current, choice, colour, clean):
            return render_views(current, choice, colour, clean)

        @_friendly
        def on_decontaminate(current, choice, colour, clean):
            return [*render_views(current, choice, colour, clean), *no_files]

        @_friendly
        def on_browse(status, request: gr.Request, profile: gr.OAuthProfile | None):
            person = person_of(request, profile)
            entries, stems = studio.browse(status, studio.desk(person) if studio.access.may_save(person) else None)
            return entries, stems

        def reopen(stem: str, current, choice, colour, clean, desk: Desk) -> list[Any]:
            left = desk.leave(current) if current is not None and current.stem != stem else []
            item = desk.reopen(stem)
            restored = f"Restored the unsaved changes applied to {item.stem}." if item.unsaved else None
            return [*show(Step(item, left, restored), current, choice, colour, clean, desk), gr.Tabs(selected="correct")]

        @_friendly
        def on_reopen(stems, current, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None,
                      evt: gr.SelectData):
            if evt.index is None or not 0 <= evt.index < len(stems):
                raise ToonmatteError("That item is no longer listed; press Refresh.")
            return reopen(stems[evt.index], current, choice, colour, clean, desk_of(request, profile))

        @_friendly
        def on_quality_open(current, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None,
                            evt: gr.SelectData):
            return reopen(selected_stem(evt), current, choice, colour, clean, desk_of(request, profile))

        # Progress shows on the progress line only: a status overlay on the editor would cover the
        # canvas (and swallow strokes) while the event runs, and an error badge would hide the image.
        private = {"api_visibility": "private"}
        editing = {**private, "show_progress_on": [progress]}
        engine_calls = {"concurrency_id": ENGINE, "concurrency_limit": 1, **editing}

        def then_downloads(event: Any) -> None:
            event.then(on_downloads, [item_state, decontaminate], downloads, **private)

        then_downloads(load.click(on_load, [uploads, folder, item_state, *look], shows, **engine_calls))
        then_downloads(take.click(on_take, [item_state, *look], shows, **engine_calls))
        then_downloads(sort.click(on_sort, [order_by, leave_out_sure, item_state, *look], shows, **engine_calls))
        approve.click(on_review(True), [item_state, review_comment], [progress, review_comment], **editing)
        send_back.click(on_review(False), [item_state, review_comment], [progress, review_comment], **editing)
        then_downloads(previous.click(on_move("previous"), [item_state, *look], shows, **engine_calls))
        then_downloads(skip.click(on_move("skip"), [item_state, *look], shows, **engine_calls))
        then_downloads(save_next.click(on_save_next, [item_state, strokes, *look], shows, js=STROKES_JS, **engine_calls))
        then_downloads(save.click(on_save, [item_state, strokes, *look], shows, js=STROKES_JS, **editing))
        then_downloads(apply.click(on_strokes("apply"), [item_state, strokes, *look], shows, js=STROKES_JS, **editing))
        then_downloads(snap.click(on_strokes("snap"), [item_state, strokes, *look], shows, js=STROKES_JS, **editing))
        then_downloads(reset.click(on_reset, [item_state, *look], shows, **editing))
        for control in (background, custom):
            control.change(on_look, [item_state, *look], views, **private)
        then_downloads(decontaminate.change(on_decontaminate, [item_state, *look], [*views, *downloads], **private))
        refresh.click(on_browse, [status_filter], [gallery, stems_state], **private)
        status_filter.change(on_browse, [status_filter], [gallery, stems_state], **private)
        browse_tab.select(on_browse, [status_filter], [gallery, stems_state], **private)
        then_downloads(gallery.select(on_reopen, [stems_state, item_state, *look], [*shows, tabs], **engine_calls))
        then_downloads(quality.table.select(on_quality_open, [item_state, *look], [*shows, tabs], **engine_calls))

        api_matte_button.click(_friendly(studio.matte_endpoint), [api_image], [api_cutout, api_alpha],
                               api_name="matte", concurrency_id=ENGINE, concurrency_limit=1,
                               api_description="Matte an image file: returns the RGBA cut-out PNG and the 8-bit mask PNG.")
        @_friendly
        def on_api_save(image_path, mask_path, request: gr.Request, profile: gr.OAuthProfile | None):
            stem, warnings = studio.save_endpoint(image_path, mask_path, person_of(request, profile))
            for message in warnings:
                gr.Warning(message)
            return stem

        api_save_button.click(on_api_save, [api_image, api_mask], [api_stem], api_name="save",
                              api_description="Store an image file and its 8-bit mask (same size) as an im/gt/an "
                                              "triple; returns the stem. Saving the same image again keeps the "
                                              "previous version in the history.")

        @_friendly
        def on_try(files, url):
            paths = [str(path) for path in files or []]
            if url and url.strip():
                paths.append(str(fetch_url(url, studio.outputs.root)))
            entries, bundle, warnings = matte_many(studio.engine, paths, studio.outputs)
            for message in warnings:
                gr.Warning(message)
            return entries, bundle

        try_go.click(on_try, [try_files, try_url], [try_gallery, try_zip], concurrency_id=ENGINE, concurrency_limit=1,
                     api_visibility="private")

        if studio.sync_line is not None:  # the Hub sync's last push, what waits, or why it fails, in words
            gr.Timer(SYNC_REFRESH).tick(studio.sync_line, None, sync, show_progress="hidden", **private)

        def on_page(current, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None):
            """Show which engine runs (or why none does) and who is here, then resume the person's queue
            where it was left; someone who may not save lands on the read-only Try it tab."""
            text, warn = studio.engine.banner()
            person = person_of(request, profile)
            banner_now = gr.Markdown(text, elem_classes=["fallback"] if warn else [])
            reviewing = gr.Accordion(visible=studio.access.may_review(person))
            if not studio.access.may_save(person):
                return [banner_now, studio.access.describe(person), current, gr.skip(),
                        *[gr.skip()] * (len(views) + len(downloads)), studio.access.describe(person),
                        gr.Tabs(selected="try"), reviewing]
            desk = studio.desk(person)
            try:
                shown_now = show(desk.current() if current is None else Step(None), current, choice, colour, clean, desk)
            except ToonmatteError as error:
                gr.Warning(str(error))
                shown_now = show(Step(None), current, choice, colour, clean, desk)
            return [banner_now, studio.access.describe(person), *shown_now, gr.Tabs(), reviewing]

        then_downloads(demo.load(on_page, [item_state, *look], [banner, who, *shows, tabs, review_box], **engine_calls))
    return demo


def launch_kwargs() -> dict[str, Any]:
    """Page-level options that Gradio 6 takes in ``launch``: the stylesheet, the shortcut and editor scripts."""
    from annotate.web import shortcuts

    return {"css": CSS + f"#{EDITOR_ID} {{ --tm-editor-height: {EDITOR_HEIGHT}px; }}\n",
            "head": shortcuts.head() + "\n" + canvas.head()}
