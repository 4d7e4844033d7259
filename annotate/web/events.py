"""What the studio page's components do: short Gradio handlers over ``annotate.studio.Studio`` and the
person's ``annotate.desk.Desk``, wired to the components of ``annotate.web.layout``.

A handler finds the person behind the event, calls one plain method (which returns a ``Step``: the
item to show and messages) and turns the result into component values with ``show``. Handlers return
files written by ``studio.renderer`` (the editor's PNG re-encoded only where the matte changed,
previews at preview size), not arrays for Gradio to encode. The full-resolution download files are
written by a step chained after each event, so the editor and the previews come back first; until that
step is done the download buttons hold no file (never a stale one).

The stroke editor is ``annotate.canvas``: strokes reach the server only when a button is pressed,
as the painted pixels' crop in a hidden textbox that the event's ``js`` fills (``STROKES_JS``).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import gradio as gr

from annotate import canvas
from annotate.access import person_of
from annotate.desk import Desk, Step
from annotate.editing import Item
from annotate.studio import Studio
from annotate.tryit import fetch_url, matte_many
from annotate.web.layout import TEAM_BATCH, Layout
from annotate.web.quality_tab import selected_stem
from toonmatte.errors import ToonmatteError

ENGINE = "engine"
"""Concurrency group of every event that may run the model: one at a time (the GPU is shared)."""
SYNC_REFRESH = 15.0
"""Seconds between refreshes of the Hub sync's status line."""
STROKES_JS = "(...values) => { values[1] = window.toonmatte.strokes(); return values; }"
"""An event's ``js``: its second input (the hidden strokes textbox) gets the editor's painted strokes."""
NO_FILES = [None, None]
"""Empty download buttons (plain values: an update would make Gradio rebuild their config)."""
PRIVATE: dict[str, Any] = {"api_visibility": "private"}
ENGINE_CALLS: dict[str, Any] = {"concurrency_id": ENGINE, "concurrency_limit": 1}


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
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


def painted(current: Item | None, payload: str | None) -> dict | None:
    """The editor's strokes for the item on screen (their canvas is its ``editor_size``)."""
    return None if current is None else canvas.editor_value(payload, current.editor_size())


class Page:
    """Turns steps into the values of ``layout.shows`` for one studio."""

    def __init__(self, studio: Studio, layout: Layout) -> None:
        self.studio, self.layout = studio, layout

    def desk(self, request: gr.Request, profile: gr.OAuthProfile | None) -> Desk:
        """The desk of the person behind an event (a one-sentence error for someone who may not save)."""
        return self.studio.desk(person_of(request, profile))

    def views(self, item: Item | None, choice: str, colour: str, clean: bool) -> list[Any]:
        """The preview and before/after files of ``item`` (None for both without one)."""
        if item is None:
            return [None, None]
        return list(self.studio.renderer.views(item, choice, colour, clean))

    def downloads(self, item: Item | None, clean: bool) -> list[Any]:
        """The download buttons' files for the current matte (chained after every event that shows one)."""
        return NO_FILES if item is None else list(self.studio.downloads(item, clean))

    def unchanged(self) -> list[Any]:
        """``gr.skip()`` for the editor, the views and the downloads."""
        return [gr.skip()] * (1 + len(self.layout.views) + len(self.layout.downloads))

    def show(self, step: Step, current: Item | None, choice: str, colour: str, clean: bool, desk: Desk) -> list[Any]:
        """Outputs for ``layout.shows``: the step's item (or the unchanged current one), with its toasts."""
        for message in step.warnings:
            gr.Warning(message)
        if step.info:
            gr.Info(step.info)
        if step.item is None:
            return [current, *self.unchanged(), desk.progress_line(current)]
        return [step.item, self.studio.renderer.editor(step.item), *self.views(step.item, choice, colour, clean),
                *NO_FILES, desk.progress_line(step.item)]


def wire_events(studio: Studio, ui: Layout, demo: gr.Blocks) -> None:
    """Connect ``ui``'s components to the studio (inside ``demo``'s ``with`` block)."""
    page = Page(studio, ui)

    @friendly
    def on_load(files, path, current, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None):
        desk = page.desk(request, profile)
        return page.show(desk.load(files, path, current), current, choice, colour, clean, desk)

    @friendly
    def on_take(current, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None):
        desk = page.desk(request, profile)
        return page.show(desk.take_team_work(TEAM_BATCH, current), current, choice, colour, clean, desk)

    @friendly
    def on_sort(by, leave_out, current, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None):
        desk = page.desk(request, profile)
        return page.show(desk.order(by, leave_out, current), current, choice, colour, clean, desk)

    def on_move(action: str) -> Callable[..., list[Any]]:
        @friendly
        def handler(current, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None):
            desk = page.desk(request, profile)
            return page.show(desk.move(action, current), current, choice, colour, clean, desk)
        handler.__name__ = f"on_{action}"
        return handler

    @friendly
    def on_save_next(current, payload, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None):
        desk = page.desk(request, profile)
        step = desk.save_and_next(current, painted(current, payload))
        return page.show(step, current, choice, colour, clean, desk)

    @friendly
    def on_save(current, payload, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None):
        desk = page.desk(request, profile)
        return page.show(desk.save_here(current, painted(current, payload)), current, choice, colour, clean, desk)

    def on_strokes(how: str) -> Callable[..., list[Any]]:
        @friendly
        def handler(current, payload, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None):
            desk = page.desk(request, profile)
            return page.show(desk.paint(current, painted(current, payload), how), current, choice, colour, clean,
                             desk)
        handler.__name__ = f"on_{how}"
        return handler

    @friendly
    def on_reset(current, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None):
        desk = page.desk(request, profile)
        return page.show(desk.reset(current), current, choice, colour, clean, desk)

    def on_review(approved: bool) -> Callable[..., Any]:
        @friendly
        def handler(current, comment, request: gr.Request, profile: gr.OAuthProfile | None):
            gr.Info(studio.review(person_of(request, profile), current, approved, comment or ""))
            return page.desk(request, profile).progress_line(current), ""
        handler.__name__ = "on_approve" if approved else "on_send_back"
        return handler

    @friendly
    def on_look(current, choice, colour, clean):
        return page.views(current, choice, colour, clean)

    @friendly
    def on_decontaminate(current, choice, colour, clean):
        return [*page.views(current, choice, colour, clean), *NO_FILES]

    @friendly
    def on_browse(status, request: gr.Request, profile: gr.OAuthProfile | None):
        return studio.browse_for(person_of(request, profile), status)

    @friendly
    def on_reopen(stems, current, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None,
                  evt: gr.SelectData):
        if evt.index is None or not 0 <= evt.index < len(stems):
            raise ToonmatteError("That item is no longer listed; press Refresh.")
        desk = page.desk(request, profile)
        step = desk.open_saved(stems[evt.index], current)
        return [*page.show(step, current, choice, colour, clean, desk), gr.Tabs(selected="correct")]

    @friendly
    def on_quality_open(current, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None,
                        evt: gr.SelectData):
        desk = page.desk(request, profile)
        step = desk.open_saved(selected_stem(evt), current)
        return [*page.show(step, current, choice, colour, clean, desk), gr.Tabs(selected="correct")]

    @friendly
    def on_api_save(image_path, mask_path, request: gr.Request, profile: gr.OAuthProfile | None):
        stem, warnings = studio.save_endpoint(image_path, mask_path, person_of(request, profile))
        for message in warnings:
            gr.Warning(message)
        return stem

    @friendly
    def on_try(files, url):
        paths = [str(path) for path in files or []]
        if url and url.strip():
            paths.append(str(fetch_url(url, studio.outputs.root)))
        entries, bundle, warnings = matte_many(studio.engine, paths, studio.outputs)
        for message in warnings:
            gr.Warning(message)
        return entries, bundle

    def on_page(current, choice, colour, clean, request: gr.Request, profile: gr.OAuthProfile | None):
        """Show which engine runs (or why none does) and who is here, then resume the person's queue
        where it was left; someone who may not save lands on the read-only Try it tab."""
        text, warn = studio.engine.banner()
        person = person_of(request, profile)
        banner = gr.Markdown(text, elem_classes=["fallback"] if warn else [])
        reviewing = gr.Accordion(visible=studio.access.may_review(person))
        who = studio.access.describe(person)
        if not studio.access.may_save(person):
            return [banner, who, current, *page.unchanged(), who, gr.Tabs(selected="try"), reviewing]
        desk = studio.desk(person)
        try:
            shown = page.show(desk.current() if current is None else Step(None), current, choice, colour, clean, desk)
        except ToonmatteError as error:
            gr.Warning(str(error))
            shown = page.show(Step(None), current, choice, colour, clean, desk)
        return [banner, who, *shown, gr.Tabs(), reviewing]

    # Progress shows on the progress line only: a status overlay on the editor would cover the
    # canvas (and swallow strokes) while the event runs, and an error badge would hide the image.
    editing: dict[str, Any] = {**PRIVATE, "show_progress_on": [ui.progress]}
    engine_calls: dict[str, Any] = {**ENGINE_CALLS, **editing}
    look, shows, item = ui.look, ui.shows, ui.item_state
    strokes = [item, ui.strokes, *look]

    def on_downloads(current, clean):  # named: benchmarks.studio times this step by its name
        return page.downloads(current, clean)

    def then_downloads(event: Any) -> None:
        event.then(on_downloads, [item, ui.decontaminate], ui.downloads, **PRIVATE)

    then_downloads(ui.load.click(on_load, [ui.uploads, ui.folder, item, *look], shows, **engine_calls))
    then_downloads(ui.take.click(on_take, [item, *look], shows, **engine_calls))
    then_downloads(ui.sort.click(on_sort, [ui.order_by, ui.leave_out_sure, item, *look], shows, **engine_calls))
    ui.approve.click(on_review(True), [item, ui.review_comment], [ui.progress, ui.review_comment], **editing)
    ui.send_back.click(on_review(False), [item, ui.review_comment], [ui.progress, ui.review_comment], **editing)
    then_downloads(ui.previous.click(on_move("previous"), [item, *look], shows, **engine_calls))
    then_downloads(ui.skip.click(on_move("skip"), [item, *look], shows, **engine_calls))
    then_downloads(ui.save_next.click(on_save_next, strokes, shows, js=STROKES_JS, **engine_calls))
    then_downloads(ui.save.click(on_save, strokes, shows, js=STROKES_JS, **editing))
    then_downloads(ui.apply.click(on_strokes("apply"), strokes, shows, js=STROKES_JS, **editing))
    then_downloads(ui.snap.click(on_strokes("snap"), strokes, shows, js=STROKES_JS, **editing))
    then_downloads(ui.reset.click(on_reset, [item, *look], shows, **editing))
    for control in (ui.background, ui.custom):
        control.change(on_look, [item, *look], ui.views, **PRIVATE)
    then_downloads(ui.decontaminate.change(on_decontaminate, [item, *look], [*ui.views, *ui.downloads], **PRIVATE))
    browse_outputs = [ui.gallery, ui.stems_state]
    ui.refresh.click(on_browse, [ui.status_filter], browse_outputs, **PRIVATE)
    ui.status_filter.change(on_browse, [ui.status_filter], browse_outputs, **PRIVATE)
    ui.browse_tab.select(on_browse, [ui.status_filter], browse_outputs, **PRIVATE)
    then_downloads(ui.gallery.select(on_reopen, [ui.stems_state, item, *look], [*shows, ui.tabs], **engine_calls))
    then_downloads(ui.quality.table.select(on_quality_open, [item, *look], [*shows, ui.tabs], **engine_calls))

    ui.api_matte_button.click(friendly(studio.matte_endpoint), [ui.api_image], [ui.api_cutout, ui.api_alpha],
                              api_name="matte", **ENGINE_CALLS,
                              api_description="Matte an image file: returns the RGBA cut-out PNG and the 8-bit "
                                              "mask PNG.")
    ui.api_save_button.click(on_api_save, [ui.api_image, ui.api_mask], [ui.api_stem], api_name="save",
                             api_description="Store an image file and its 8-bit mask (same size) as an im/gt/an "
                                             "triple; returns the stem. Saving the same image again keeps the "
                                             "previous version in the history.")
    ui.try_go.click(on_try, [ui.try_files, ui.try_url], [ui.try_gallery, ui.try_zip], **ENGINE_CALLS, **PRIVATE)
    if studio.sync_line is not None:  # the Hub sync's last push, what waits, or why it fails, in words
        gr.Timer(SYNC_REFRESH).tick(studio.sync_line, None, ui.sync, show_progress="hidden", **PRIVATE)
    then_downloads(demo.load(on_page, [item, *look], [ui.banner, ui.who, *shows, ui.tabs, ui.review_box],
                             **engine_calls))
