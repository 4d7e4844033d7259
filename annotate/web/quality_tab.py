"""The studio's "Quality" tab in Gradio: a summary, two small charts and the worst-first table of
``annotate.quality``, refreshed when the tab opens, on Refresh and when the sort changes.

Opening a table row in the editor needs the Correct tab's components and handlers, which live in
``annotate.web.layout`` and ``annotate.web.events``; so ``quality_tab`` returns its components and the
page wires ``table.select`` to its reopen handler with :func:`selected_stem`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import gradio as gr

from annotate.quality import (
    ACCURACY_BINS,
    DEFAULT_SORT,
    SORTS,
    TABLE_COLUMNS,
    TABLE_LIMIT,
    QualityView,
    Scorer,
    quality_view,
)
from annotate.studio import Studio
from toonmatte.errors import ToonmatteError

TAB_ID = "quality"
CHART_HEIGHT = 260
_DATATYPES: list[Literal["str", "number"]] = ["str", "number", "number", "number", "number", "number", "number",
                                              "str", "str", "str", "str"]

INTRO = (
    "How much annotators changed the model's mattes, and how good those mattes were against the corrected "
    "`gt` (ToonOut's Pixel Accuracy: a pixel is wrong where the alphas differ by more than 10 levels; "
    "thin errors along edges are forgiven). Every save scores the prediction the annotator started from. "
    f"The table lists up to {TABLE_LIMIT} items; **click a row to open it in the editor**. "
    "`python -m toonmatte report` gives every metric with thumbnails."
)


@dataclass
class QualityTab:
    """The tab's components; ``table``'s first column is the item's stem."""

    tab: gr.Tab
    sort: gr.Dropdown
    refresh: gr.Button
    summary: gr.Markdown
    over_time: gr.ScatterPlot
    histogram: gr.BarPlot
    table: gr.Dataframe


def quality_tab(studio: Studio, scorer: Scorer | None = None) -> QualityTab:
    """Create the "Quality" tab (id ``"quality"``) inside the caller's ``gr.Tabs()`` and wire its own events.

    The caller adds the one event that needs the editor: ``table.select`` -> reopen ``selected_stem(evt)``.
    """
    scorer = scorer or Scorer(studio.store)
    with gr.Tab("Quality", id=TAB_ID) as tab:
        gr.Markdown(INTRO)
        with gr.Row():
            sort = gr.Dropdown(list(SORTS), value=DEFAULT_SORT, label="Sort the table", elem_id="quality-sort")
            refresh = gr.Button("Refresh", elem_id="quality-refresh")
        summary = gr.Markdown("Open this tab or press **Refresh** to score the saved items.", elem_id="quality-summary")
        with gr.Row():
            over_time = gr.ScatterPlot(x="saved", y="changed %", color="model", title="Changed pixels per save",
                                       x_title="saved (UTC)", y_title="changed pixels (%)",
                                       tooltip=["stem", "changed %", "model"], height=CHART_HEIGHT,
                                       elem_id="quality-over-time")
            histogram = gr.BarPlot(x="Pixel Accuracy", y="items", title="Pixel Accuracy of the model's mattes",
                                   sort=[label for _, _, label in ACCURACY_BINS], height=CHART_HEIGHT,
                                   elem_id="quality-histogram")
        table = gr.Dataframe(headers=list(TABLE_COLUMNS), datatype=_DATATYPES, interactive=False, wrap=False,
                             max_height=520, label="Saved items (click a row to open it in the editor)",
                             elem_id="quality-table")

    def on_refresh(choice: str, progress: gr.Progress = gr.Progress()) -> QualityView:
        try:
            rows = scorer.rows(lambda done, total: progress((done, total), desc="Scoring saved items"))
            return quality_view(rows, choice)
        except ToonmatteError as error:
            raise gr.Error(str(error), print_exception=False) from None

    outputs = [summary, table, over_time, histogram]
    for trigger in (refresh.click, sort.change, tab.select):
        trigger(on_refresh, [sort], outputs, api_visibility="private")
    return QualityTab(tab, sort, refresh, summary, over_time, histogram, table)


def selected_stem(evt: gr.SelectData) -> str:
    """The stem of the table row a ``table.select`` event points at (read from the row, so any client-side
    sorting of the table does not matter); raises ``ToonmatteError`` when the row has none."""
    row = evt.row_value
    stem = row[0] if isinstance(row, (list, tuple)) and row else None
    if not isinstance(stem, str) or not stem:
        raise ToonmatteError("That row is no longer listed; press Refresh in the Quality tab.")
    return stem
