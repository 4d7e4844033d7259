"""The quality view: predictions kept by the store, per-item scores worst first, summary, chart data, the Gradio tab."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from annotate.engine import Engine
from annotate.quality import (
    ACCURACY_BINS,
    DEFAULT_SORT,
    NO_PREDICTION,
    SORTS,
    TABLE_COLUMNS,
    QualityRow,
    Scorer,
    accuracy_histogram,
    annotator_lines,
    change_over_time,
    quality_view,
    ranking_line,
    score_pair,
    sort_rows,
    summarize,
    summary_markdown,
    table_frame,
)
from annotate.studio import Studio
from annotate.web.quality_tab import QualityTab, quality_tab, selected_stem
from conftest import draw_toon
from toonmatte.dataset import DatasetStore, encode_triple
from toonmatte.dataset import store as store_module
from toonmatte.errors import ToonmatteError
from toonmatte.evaluation.metrics import boundary_iou, iou, mae, pixel_accuracy
from toonmatte.evaluation.uncertainty import uncertainty

SIZE = 48


def toon(seed: int) -> tuple[np.ndarray, np.ndarray]:
    return draw_toon(SIZE, SIZE, seed=seed)


def worse(alpha: np.ndarray, pixels: int) -> np.ndarray:
    """``alpha`` with a ``pixels`` x ``pixels`` block of the top-left backdrop turned into foreground."""
    broken = alpha.copy()
    broken[:pixels, :pixels] = 255
    return broken


def save(store: DatasetStore, stem: str, seed: int, prediction: np.ndarray | None, **kwargs) -> str:
    image, gt = toon(seed)
    return store.save_triple(stem, encode_triple(image, gt, image, prediction), model="toonout", model_version="v1",
                             **kwargs)


def prediction_files(root: Path) -> list[str]:
    return sorted(path.name for path in (root / ".toonmatte" / "predictions").iterdir())


def row(stem: str, accuracy: float | None, changed: float | None = 0.01, model: str = "toonout",
        saved_at: str = "2025-01-02T03:04:05+00:00") -> QualityRow:
    scores = None if accuracy is None else {"pixel_accuracy": accuracy, "boundary_iou": accuracy,
                                            "iou": 1.0, "mae": 0.0}
    return QualityRow(stem, "corrected", model, "v1", saved_at, changed, None if changed is None else 2.0, scores)


# ---------------------------------------------------------------------------------------------- the store's side
def test_store_keeps_the_prediction_of_the_current_version_only(tmp_path):
    store = DatasetStore(tmp_path, generation="g1")
    image, gt = toon(0)
    first = worse(gt, 8)
    assert store.prediction_pair("a") is None  # no such item
    store.save_triple("a", encode_triple(image, gt, image, first))
    prediction, saved_gt = store.prediction_pair("a")
    assert np.array_equal(prediction, first) and np.array_equal(saved_gt, gt)
    assert len(prediction_files(tmp_path)) == 1

    second = worse(gt, 4)
    corrected = worse(gt, 2)
    store.save_triple("a", encode_triple(image, corrected, image, second))
    prediction, saved_gt = store.prediction_pair("a")
    assert np.array_equal(prediction, second) and np.array_equal(saved_gt, corrected)
    assert len(prediction_files(tmp_path)) == 1  # the replaced version's prediction is gone

    store.save_triple("a", encode_triple(image, gt, image))  # e.g. the /save endpoint: no prediction for this version
    assert store.prediction_pair("a") is None
    assert prediction_files(tmp_path) == []
    assert len(list(tmp_path.rglob("gt/a.png"))) == 1  # the dataset itself never sees prediction files


@pytest.mark.parametrize("step, expected", [("temps-written", "old"), ("history-staged", "old"),
                                            ("indexed", "new"), ("renamed-gt", "new"), ("history-committed", "new")])
def test_crash_mid_save_pairs_each_gt_with_its_own_prediction(tmp_path, monkeypatch, step, expected):
    store = DatasetStore(tmp_path, generation="g1")
    image, gt = toon(0)
    old_prediction, new_prediction, new_gt = worse(gt, 8), worse(gt, 4), worse(gt, 2)
    store.save_triple("a", encode_triple(image, gt, image, old_prediction))

    class Crash(Exception):
        pass

    def crash(name: str) -> None:
        if name == step:
            raise Crash(name)

    monkeypatch.setattr(store_module, "_fault_point", crash)
    with pytest.raises(Crash):
        store.save_triple("a", encode_triple(image, new_gt, image, new_prediction))
    monkeypatch.setattr(store_module, "_fault_point", lambda name: None)
    store.close()

    reopened = DatasetStore(tmp_path, generation="g1")  # recovery
    prediction, saved_gt = reopened.prediction_pair("a")
    want = (old_prediction, gt) if expected == "old" else (new_prediction, new_gt)
    assert np.array_equal(prediction, want[0]) and np.array_equal(saved_gt, want[1])
    assert len(prediction_files(tmp_path)) == 1


# ---------------------------------------------------------------------------------------------------- the rows
def test_scorer_rows_scores_saved_predictions_and_lists_the_rest_unscored(tmp_path):
    store = DatasetStore(tmp_path, generation="g1")
    _, gt0 = toon(0)
    _, gt1 = toon(1)
    bad, good = worse(gt0, 20), worse(gt1, 3)
    save(store, "bad", 0, bad)
    save(store, "good", 1, good)
    save(store, "api", 2, None)
    store.record("queued", status="predicted")  # indexed but never saved: not a row

    rows = Scorer(store).rows()
    by_stem = {r.stem: r for r in rows}
    assert set(by_stem) == {"bad", "good", "api"}
    assert by_stem["bad"].scores == pytest.approx({"pixel_accuracy": pixel_accuracy(bad, gt0), "mae": mae(bad, gt0),
                                                   "iou": iou(bad, gt0), "boundary_iou": boundary_iou(bad, gt0)})
    assert by_stem["bad"].uncertainty == uncertainty(bad).score and by_stem["api"].uncertainty is None
    assert by_stem["bad"].changed_fraction == pytest.approx(np.mean(bad != gt0))
    assert by_stem["api"].scores is None and by_stem["api"].note == NO_PREDICTION
    assert by_stem["api"].changed_fraction is None

    ordered = sort_rows(rows, "pixel_accuracy")
    assert [r.stem for r in ordered] == ["bad", "good", "api"]  # worst first, unscored last
    assert by_stem["bad"].scores["pixel_accuracy"] < by_stem["good"].scores["pixel_accuracy"] < 1.0
    assert [r.stem for r in sort_rows(rows, "changed_fraction")] == ["bad", "good", "api"]
    assert [r.stem for r in sort_rows(rows, "mae")][:2] == ["bad", "good"]  # higher MAE is worse
    assert [r.stem for r in sort_rows(rows, "saved_at")] == ["api", "good", "bad"]  # newest first


def test_scorer_sees_a_resave_and_reports_damaged_files(tmp_path):
    store = DatasetStore(tmp_path, generation="g1")
    _, gt = toon(0)
    save(store, "a", 0, worse(gt, 20))
    scorer = Scorer(store)
    before = scorer.rows()[0].scores["pixel_accuracy"]
    save(store, "a", 0, gt.copy())  # the model was right this time
    assert before < 1.0 and scorer.rows()[0].scores["pixel_accuracy"] == 1.0

    (prediction,) = (tmp_path / ".toonmatte" / "predictions").iterdir()
    save(store, "b", 1, toon(1)[1])
    damaged = next(p for p in (tmp_path / ".toonmatte" / "predictions").iterdir() if p.name.startswith("b."))
    damaged.write_bytes(b"not a png")
    rows = {r.stem: r for r in Scorer(store).rows()}
    assert rows["b"].scores is None and rows["b"].note.startswith("not scored:")
    assert rows["a"].scores["pixel_accuracy"] == 1.0 and prediction.exists()


PERFECT = {"pixel_accuracy": 1.0, "boundary_iou": 1.0, "iou": 1.0, "mae": 0.0}


@pytest.mark.parametrize("kind", ["soft", "binary", "never 255", "all 0", "all 255"])
def test_score_pair_is_perfect_for_an_untouched_prediction(kind):
    soft = toon(3)[1]
    assert np.any((soft > 0) & (soft < 255))  # anti-aliased edges
    gt = {"soft": soft, "binary": np.where(soft > 128, 255, 0).astype(np.uint8),
          "never 255": (soft.astype(np.float64) * 200 / 255).round().astype(np.uint8),
          "all 0": np.zeros_like(soft), "all 255": np.full_like(soft, 255)}[kind]
    assert score_pair(gt.copy(), gt) == PERFECT


def test_untouched_soft_saves_show_mae_zero_in_the_tab(tmp_path):
    """Issue 14: 0% changed and IoU 1 came with MAE > 0; the tab's whole path (store, Scorer, summary, table)."""
    store = DatasetStore(tmp_path, generation="g1")
    for seed, stem in enumerate(["a", "b"]):
        save(store, stem, seed, toon(seed)[1].copy())  # saved exactly as predicted
    rows = Scorer(store).rows()
    assert [r.scores for r in rows] == [PERFECT, PERFECT]
    summary = summarize(rows)
    assert summary.untouched == 2 and summary.mean_scores == PERFECT
    assert "MAE 0.0000" in summary_markdown(summary)
    assert table_frame(rows)["MAE"].tolist() == [0.0, 0.0]


# ------------------------------------------------------------------------------------------- summary and charts
def test_empty_store_gives_an_empty_but_well_formed_view(tmp_path):
    rows = Scorer(DatasetStore(tmp_path)).rows()
    assert rows == []
    markdown, table, over_time, histogram = quality_view(rows)
    assert markdown.startswith("No saved items yet")
    assert list(table.columns) == list(TABLE_COLUMNS) and table.empty
    assert over_time.empty and list(over_time.columns) == ["saved", "changed %", "model", "stem"]
    assert histogram["items"].tolist() == [0] * len(ACCURACY_BINS)


def test_summary_counts_means_and_models():
    rows = [row("a", 0.90, 0.10), row("b", 1.0, 0.0), row("c", 0.99, 0.02, model="fallback"), row("d", None, None)]
    summary = summarize(rows)
    assert (summary.items, summary.scored, summary.untouched, summary.low_accuracy) == (4, 3, 1, 1)
    assert summary.mean_changed_fraction == pytest.approx(0.04)
    assert summary.mean_scores["pixel_accuracy"] == pytest.approx((0.90 + 1.0 + 0.99) / 3)
    assert summary.median_pixel_accuracy == pytest.approx(0.99)
    assert summary.by_model == {"fallback v1": {"items": 1.0, "changed_fraction": 0.02, "pixel_accuracy": 0.99},
                                "toonout v1": pytest.approx({"items": 3.0, "changed_fraction": 0.05,
                                                             "pixel_accuracy": 0.95})}
    markdown = summary_markdown(summary)
    assert "**4 saved items**, 3 scored" in markdown and "1 saved without one is not scored" in markdown
    assert "**4.00%**" in markdown and "| toonout v1 | 3 | 5.00 | 95.00 |" in markdown


def test_summary_without_any_prediction_says_so():
    markdown = summary_markdown(summarize([row("a", None, None)]))
    assert "0 scored" in markdown and "Pixel Accuracy" not in markdown.split("|")[0]


def test_histogram_bins_include_the_edges():
    rows = [row("a", 1.0), row("b", 0.995), row("c", 0.9949), row("d", 0.0), row("e", 0.95), row("f", None)]
    histogram = accuracy_histogram(rows)
    counts = dict(zip(histogram["Pixel Accuracy"], histogram["items"]))
    assert list(counts) == [label for _, _, label in ACCURACY_BINS]
    assert counts == {"< 80%": 1, "80-90%": 0, "90-95%": 0, "95-98%": 1, "98-99%": 0, "99-99.5%": 1, "99.5-100%": 2}


def test_change_over_time_is_oldest_first_in_percent_and_skips_unknown_changes():
    rows = [row("new", 0.9, 0.25, saved_at="2025-03-01T12:00:00+00:00"),
            row("old", 0.9, 0.5, saved_at="2025-02-01T23:30:00+01:00"), row("none", None, None)]
    frame = change_over_time(rows)
    assert frame["stem"].tolist() == ["old", "new"] and frame["changed %"].tolist() == [50.0, 25.0]
    assert frame["saved"].tolist() == [pd.Timestamp("2025-02-01 22:30"), pd.Timestamp("2025-03-01 12:00")]


def test_table_frame_rounds_limits_and_leaves_missing_values_empty():
    rows = [row("a", 0.123456, 0.5), row("b", None, None)]
    table = table_frame(rows)
    assert table.iloc[0, 0] == "a" and table.loc[0, "Pixel Acc. %"] == pytest.approx(12.35)
    assert table.loc[0, "changed %"] == pytest.approx(50.0) and table.loc[0, "saved (UTC)"] == "2025-01-02 03:04"
    assert pd.isna(table.loc[1, "Pixel Acc. %"]) and pd.isna(table.loc[1, "changed %"])
    assert len(table_frame(rows, limit=1)) == 1


def test_quality_view_sorts_and_refuses_unknown_sorts():
    rows = [row("fine", 0.99, 0.5), row("poor", 0.5, 0.01)]
    assert quality_view(rows, DEFAULT_SORT)[1]["stem"].tolist() == ["poor", "fine"]
    assert quality_view(rows, "Changed pixels, most first")[1]["stem"].tolist() == ["fine", "poor"]
    assert set(SORTS) >= {DEFAULT_SORT}
    with pytest.raises(ToonmatteError, match="Unknown sort"):
        quality_view(rows, "by colour")


# -------------------------------------------------------------------------------------- with the studio and Gradio
def test_studio_saves_are_scored_against_the_prediction_the_annotator_started_from(tmp_path):
    """The whole path: queue -> fallback prediction -> paint -> save -> the quality row scores item.predicted."""
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    image, _ = draw_toon(64, 64, seed=0)
    Image.fromarray(image).save(uploads / "toon0.png")
    studio = Studio(DatasetStore(tmp_path / "dataset", generation="g1"), Engine(model="fallback"))
    try:
        item = studio.desk().load(None, str(uploads)).item
        layer = np.zeros((64, 64, 4), np.uint8)
        layer[:6, :10] = (0, 255, 0, 255)  # a foreground stroke on the backdrop corner
        item, stem = studio.desk().save(item, {"background": None, "layers": [layer], "composite": None})
        (quality,) = Scorer(studio.store).rows()
        assert quality.stem == stem and quality.model == "fallback"
        assert quality.scores == pytest.approx(score_pair(item.predicted, item.alpha))
        assert quality.changed_fraction == pytest.approx(np.mean(item.predicted != item.alpha))
        assert quality.changed_fraction > 0
    finally:
        studio.close()


def test_the_tab_builds_inside_a_page_and_rows_give_their_stem(tmp_path):
    store = DatasetStore(tmp_path, generation="g1")
    _, gt = toon(0)
    save(store, "a", 0, worse(gt, 10))
    studio = Studio(store, Engine(model="fallback"))
    with gr.Blocks() as demo:
        with gr.Tabs():
            with gr.Tab("Correct", id="correct"):
                gr.Markdown("editor")
            quality = quality_tab(studio)
    assert isinstance(quality, QualityTab) and quality.tab.id == "quality"
    assert {quality.table._id, quality.summary._id, quality.histogram._id} <= set(demo.blocks)
    triggers = {tuple(target) for fn in demo.fns.values() for target in fn.targets}
    assert {(quality.refresh._id, "click"), (quality.sort._id, "change"), (quality.tab._id, "select")} <= triggers

    _, table, _, _ = quality_view(Scorer(store).rows())
    event = gr.SelectData(quality.table,
                          {"index": [0, 3], "value": table.iloc[0, 3], "row_value": table.iloc[0].tolist()})
    assert selected_stem(event) == "a"
    with pytest.raises(ToonmatteError, match="Refresh"):
        selected_stem(gr.SelectData(quality.table, {"index": [0, 0], "value": None, "row_value": None}))


def test_time_per_item_and_changed_pixels_per_minute_per_annotator_survive_a_restart(tmp_path):
    store = DatasetStore(tmp_path, generation="g1")
    image, gt = toon(0)
    for stem, who, seconds, factor in (("a", "ann", 60.0, 8), ("b", "ann", 180.0, 4), ("c", "bo", 30.0, 2)):
        store.save_triple(stem, encode_triple(image, gt, image, worse(gt, factor)), annotator=who, seconds=seconds)
    store.close()
    reopened = DatasetStore(tmp_path, generation="g1")
    assert (reopened.get("b").seconds, reopened.get("b").pixels) == (180.0, gt.size)
    rows = Scorer(reopened).rows()
    table = annotator_lines(rows)
    ann = next(line for line in table if line.startswith("| ann |")).split("|")
    changed = sum(reopened.get(stem).changed_fraction * gt.size for stem in "ab")
    assert ann[2].strip() == "2" and ann[3].strip() == "2.0" and ann[4].strip() == f"{changed / 4:,.0f}"
    assert ranking_line(rows).startswith("The uncertainty score ranks these 3 items")
    assert ranking_line(rows[:2]) is None
    summary, *_ = quality_view(rows)
    assert "| bo | 1 | 0.5 |" in summary and "Spearman" in summary
