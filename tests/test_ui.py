"""The studio page's wiring: events reach the Studio methods they are meant to (no browser needed)."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np

from annotate.access import Access
from annotate.engine import Engine
from annotate.studio import Studio
from annotate.web.ui import build_app
from conftest import draw_toon
from toonmatte.dataset import DatasetStore, encode_triple


def handler_for(demo: gr.Blocks, component: gr.components.Component, event: str):
    """The function a component's event runs (the first one, not the chained ``.then`` steps)."""
    for fn in demo.fns.values():
        if any(target == component._id and name == event for target, name in fn.targets):
            return fn.fn
    raise AssertionError(f"no {event} handler on {component}")


def test_clicking_a_quality_row_opens_that_item_in_the_editor(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "dataset", generation="g1")
    rgb, alpha = draw_toon(64, 64)
    store.save_triple("hero", encode_triple(rgb, alpha, rgb, np.zeros_like(alpha)), model="fallback")
    studio = Studio(store, Engine(model="fallback").start(), access=Access(local_annotator="tester"))
    try:
        demo = build_app(studio)
        table = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "quality-table")
        on_open = handler_for(demo, table, "select")
        evt = gr.SelectData(table, {"index": [0, 0], "value": "hero", "row_value": ["hero", 45.0]})
        # no request, no profile: the local person
        outputs = on_open(None, "checkerboard", "#00ff00", True, None, None, evt)
        item = outputs[0]
        assert item.stem == "hero"
        np.testing.assert_array_equal(item.alpha, alpha)  # the saved gt, ready to edit again
        assert outputs[-1].selected == "correct"
    finally:
        studio.close()


def test_the_hub_sync_status_shows_and_refreshes_only_when_syncing(tmp_path: Path) -> None:
    store = DatasetStore(tmp_path / "dataset", generation="g1")
    lines = iter(["2 saves wait for the next push to team/anime (every 5 min; no push yet since the start).",
                  "Everything is on the Hub in team/anime (last push at 12:00 UTC)."])
    studio = Studio(store, Engine(model="fallback"), sync_line=lambda: next(lines))
    plain = Studio(DatasetStore(tmp_path / "plain"), Engine(model="fallback"))
    try:
        demo = build_app(studio)
        line = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "sync")
        assert line.visible and "2 saves wait" in line.value
        timer = next(block for block in demo.blocks.values() if isinstance(block, gr.Timer))
        assert handler_for(demo, timer, "tick")().startswith("Everything is on the Hub")
        quiet = build_app(plain)
        assert not next(block for block in quiet.blocks.values() if getattr(block, "elem_id", None) == "sync").visible
        assert not any(isinstance(block, gr.Timer) for block in quiet.blocks.values())
    finally:
        studio.close()
        plain.close()
