"""The studio's quality view, without Gradio: how much annotators changed the model's mattes, and how
good those mattes were against the corrected ``gt``, worst first, with a summary and chart data.

Where the model's alpha comes from. Every studio save passes the matte the person started from (the
model's prediction, also the editor's reset target) to ``DatasetStore.save_triple``, and the store
keeps it with that version under ``.toonmatte/predictions/`` (see ``toonmatte.dataset.store``). The quality
view scores exactly that file. Re-running ``studio.engine`` instead was rejected: it would score
whatever model is loaded today rather than the one the annotator corrected (the index's
``model``/``model_version``), it would not agree with the change statistics recorded at save time,
and it costs a forward pass per item, which on a CPU makes a refresh of a real dataset take minutes. Comparing today's
model on the dataset is what ``python -m toonmatte evaluate --models ... --data ROOT`` is for.
Versions saved without a prediction (the ``/save`` endpoint, or saves from before predictions were
kept) are listed with no score and sorted last.

Which metrics. The table shows the cheap ones: ToonOut's Pixel Accuracy, boundary IoU, IoU and MAE
(far cheaper than every metric of ``toonmatte.evaluation.metrics.image_metrics``, whose
S/E/F-measures dominate its cost), so that a refresh stays
interactive; scores are cached per item version, so a refresh only reads the items saved since.
The full set, with thumbnails, is ``python -m toonmatte report``.
"""
from __future__ import annotations

import re
import statistics
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from toonmatte.dataset import DatasetStore, ItemRecord
from toonmatte.errors import ToonmatteError
from toonmatte.evaluation.metrics import boundary_iou, iou, mae, pixel_accuracy
from toonmatte.evaluation.uncertainty import ranking_quality, uncertainty

TABLE_METRICS: dict[str, Callable] = {
    "pixel_accuracy": pixel_accuracy, "boundary_iou": boundary_iou, "iou": iou, "mae": mae,
}
"""The metrics scored per item (see the module docstring for why these four)."""

SORTS: dict[str, str] = {
    "Pixel Accuracy, worst first": "pixel_accuracy",
    "Boundary IoU, worst first": "boundary_iou",
    "Changed pixels, most first": "changed_fraction",
    "Most recently saved first": "saved_at",
}
"""Sort choices shown in the tab -> the ``sort_rows`` key."""
DEFAULT_SORT = "Pixel Accuracy, worst first"

TABLE_LIMIT = 500
"""The table lists at most this many rows (the summary and charts cover every item)."""

ACCURACY_BINS: tuple[tuple[float, float, str], ...] = (
    (0.0, 0.80, "< 80%"), (0.80, 0.90, "80-90%"), (0.90, 0.95, "90-95%"), (0.95, 0.98, "95-98%"),
    (0.98, 0.99, "98-99%"), (0.99, 0.995, "99-99.5%"), (0.995, 1.0, "99.5-100%"),
)
"""Pixel Accuracy histogram bins [low, high) (the last one includes 1.0); finer near the top, where
ToonOut's headline (95.3% -> 99.5%) lives."""
LOW_ACCURACY = 0.95
"""The summary counts items whose Pixel Accuracy is below this."""

NO_PREDICTION = "saved without the model's prediction: no score"

TABLE_COLUMNS = ("stem", "Pixel Acc. %", "Boundary IoU", "IoU", "MAE", "changed %", "mean |Δα|",
                 "model", "saved (UTC)", "status", "note")
"""The table's headers; the first column is the stem (``selected_stem`` reads it back)."""


@dataclass(frozen=True)
class QualityRow:
    """One saved item: what the annotator changed (from the index) and the model's scores (None: not scored)."""

    stem: str
    status: str
    model: str | None
    model_version: str | None
    saved_at: str
    changed_fraction: float | None
    mean_abs_delta: float | None
    scores: dict[str, float] | None
    note: str = ""
    annotator: str | None = None
    seconds: float | None = None
    pixels: int | None = None
    uncertainty: float | None = None


def score_pair(prediction: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """The :data:`TABLE_METRICS` of one predicted alpha against its corrected ``gt`` (uint8 HxW each)."""
    return {name: float(metric(prediction, gt)) for name, metric in TABLE_METRICS.items()}


class Scorer:
    """Rows for every saved item of a store, scores cached per item version (safe to share between sessions)."""

    def __init__(self, store: DatasetStore) -> None:
        self.store = store
        self._cache: dict[tuple[str, str, int], tuple[dict[str, float] | None, str, float | None]] = {}
        self._lock = threading.Lock()

    def rows(self, on_progress: Callable[[int, int], None] | None = None) -> list[QualityRow]:
        """A row per saved item (newest first, as the index lists them); ``on_progress(done, total)`` after each."""
        records = [record for record in self.store.items() if record.versions > 0]
        rows = []
        for done, record in enumerate(records, 1):
            scores, note, unsure = self._scores(record)
            rows.append(QualityRow(record.stem, record.status, record.model, record.model_version, record.updated_at,
                                   record.changed_fraction, record.mean_abs_delta, scores, note, record.annotator,
                                   record.seconds, record.pixels, unsure))
            if on_progress is not None:
                on_progress(done, len(records))
        with self._lock:  # forget versions that are gone
            live = {(r.stem, r.updated_at, r.versions) for r in records}
            for key in self._cache.keys() - live:
                del self._cache[key]
        return rows

    def _scores(self, record: ItemRecord) -> tuple[dict[str, float] | None, str, float | None]:
        """(the prediction's scores, a note, the prediction's uncertainty score) of a saved item."""
        key = (record.stem, record.updated_at, record.versions)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        try:
            pair = self.store.prediction_pair(record.stem)
            result = (None, NO_PREDICTION, None) if pair is None else (
                score_pair(*pair), "", uncertainty(pair[0]).score)
        except (ToonmatteError, ValueError) as error:  # a damaged file, or a gt replaced by hand with another size
            result = (None, f"not scored: {error}", None)
        with self._lock:
            self._cache[key] = result
        return result


def sort_rows(rows: list[QualityRow], by: str = "pixel_accuracy") -> list[QualityRow]:
    """Rows worst first by a metric (lowest first; ties: lower boundary IoU, then stem), most changed first
    (``changed_fraction``) or newest first (``saved_at``); rows without the value come last."""
    if by == "saved_at":
        return sorted(rows, key=lambda row: row.saved_at, reverse=True)
    if by == "changed_fraction":
        return sorted(rows, key=lambda row: (row.changed_fraction is None, -(row.changed_fraction or 0.0), row.stem))
    if by not in TABLE_METRICS:
        raise ValueError(f"unknown sort key {by!r}")
    sign = -1.0 if by == "mae" else 1.0  # MAE: higher is worse

    def key(row: QualityRow) -> tuple:
        if row.scores is None:
            return (True, 0.0, 0.0, row.stem)
        return (False, sign * row.scores[by], row.scores["boundary_iou"], row.stem)
    return sorted(rows, key=key)


@dataclass(frozen=True)
class Summary:
    """Aggregates over the saved items; means are over the items that have the value (None: none has it)."""

    items: int
    scored: int
    untouched: int
    low_accuracy: int
    mean_changed_fraction: float | None
    mean_abs_delta: float | None
    mean_scores: dict[str, float]
    median_pixel_accuracy: float | None
    by_model: dict[str, dict[str, float]]


def model_name(row: QualityRow) -> str:
    """"toonout v1", "fallback" (a version equal to the model's name is not repeated), or "unknown"."""
    if not row.model:
        return "unknown"
    if row.model_version and row.model_version != row.model:
        version = row.model_version
        return f"{row.model} {version[:8] if re.fullmatch(r'[0-9a-f]{40}', version) else version}"
    return row.model


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def summarize(rows: list[QualityRow]) -> Summary:
    """Counts and means over ``rows``; ``by_model`` maps "model version" to its item count, mean changed fraction
    and mean Pixel Accuracy (when any of its items is scored)."""
    scored = [row.scores for row in rows if row.scores is not None]
    changed = [row.changed_fraction for row in rows if row.changed_fraction is not None]
    accuracy = [scores["pixel_accuracy"] for scores in scored]
    groups: dict[str, list[QualityRow]] = {}
    for row in rows:
        name = model_name(row)
        groups.setdefault(name, []).append(row)
    by_model = {}
    for name, members in sorted(groups.items()):
        entry: dict[str, float] = {"items": float(len(members))}
        member_changed = _mean([r.changed_fraction for r in members if r.changed_fraction is not None])
        member_accuracy = _mean([r.scores["pixel_accuracy"] for r in members if r.scores is not None])
        if member_changed is not None:
            entry["changed_fraction"] = member_changed
        if member_accuracy is not None:
            entry["pixel_accuracy"] = member_accuracy
        by_model[name] = entry
    return Summary(
        items=len(rows), scored=len(scored),
        untouched=sum(1 for value in changed if value == 0.0),
        low_accuracy=sum(1 for value in accuracy if value < LOW_ACCURACY),
        mean_changed_fraction=_mean(changed),
        mean_abs_delta=_mean([row.mean_abs_delta for row in rows if row.mean_abs_delta is not None]),
        mean_scores=({name: statistics.fmean(scores[name] for scores in scored) for name in TABLE_METRICS}
                     if scored else {}),
        median_pixel_accuracy=statistics.median(accuracy) if accuracy else None,
        by_model=by_model,
    )


def annotator_lines(rows: list[QualityRow]) -> list[str]:
    """A Markdown table: per annotator, items saved, median minutes per item and changed pixels per
    minute (over the saves whose time open was recorded)."""
    groups: dict[str, list[QualityRow]] = {}
    for row in rows:
        groups.setdefault(row.annotator or "unknown", []).append(row)
    table = ["| annotator | items | minutes per item (median) | changed pixels per minute |", "|---|---:|---:|---:|"]
    for name, members in sorted(groups.items()):
        timed = [(row.seconds, row) for row in members if row.seconds and row.seconds > 0]
        minutes = f"{statistics.median(seconds for seconds, _ in timed) / 60:.1f}" if timed else "–"
        counted = [(seconds, row.changed_fraction * row.pixels) for seconds, row in timed
                   if row.pixels and row.changed_fraction is not None]
        total_minutes = sum(seconds for seconds, _ in counted) / 60
        rate = (f"{sum(pixels for _, pixels in counted) / total_minutes:,.0f}"
                if counted and total_minutes > 0 else "–")
        table.append(f"| {name} | {len(members)} | {minutes} | {rate} |")
    return table


def ranking_line(rows: list[QualityRow]) -> str | None:
    """How well the uncertainty score of the model's predictions ranked the items by how much people
    changed them (None with fewer than 3 scored items)."""
    scored = [row for row in rows if row.uncertainty is not None and row.mean_abs_delta is not None]
    if len(scored) < 3:
        return None
    rho, found = ranking_quality(np.array([row.uncertainty for row in scored]),
                                 np.array([row.mean_abs_delta for row in scored]))
    return (f"The uncertainty score ranks these {len(scored)} items by how much people changed them with "
            f"Spearman's rho **{rho:.2f}**; its top 20 % hold {found:.0%} of the most-changed 20 %.")


def summary_markdown(summary: Summary) -> str:
    """The summary as Markdown for the tab: a few sentences and a small per-model table."""
    if summary.items == 0:
        return "No saved items yet: correct some images in the **Correct** tab, save them, then press **Refresh**."
    unscored = summary.items - summary.scored
    paragraphs = [f"**{summary.items} saved item{'s' if summary.items != 1 else ''}**, {summary.scored} scored against "
                  "the model's prediction they started from"
                  + (f" ({unscored} saved without one "
                     f"{'is' if unscored == 1 else 'are'} not scored)." if unscored else ".")]
    if summary.mean_changed_fraction is not None:
        paragraphs.append(f"Annotators changed **{100 * summary.mean_changed_fraction:.2f}%** of the pixels on average "
                          f"(mean |Δα| {summary.mean_abs_delta:.2f} of 255); {summary.untouched} "
                          f"item{'s were' if summary.untouched != 1 else ' was'} saved untouched.")
    if summary.mean_scores and summary.median_pixel_accuracy is not None:  # both from the scored items
        means = summary.mean_scores
        paragraphs.append(f"The model's mattes: Pixel Accuracy **{100 * means['pixel_accuracy']:.2f}%** mean "
                          f"(median {100 * summary.median_pixel_accuracy:.2f}%, {summary.low_accuracy} below "
                          f"{100 * LOW_ACCURACY:.0f}%), boundary IoU {means['boundary_iou']:.3f}, "
                          f"IoU {means['iou']:.3f}, MAE {means['mae']:.4f}.")
    table = ["| model | items | changed % | Pixel Acc. % |", "|---|---:|---:|---:|"]
    for name, entry in summary.by_model.items():
        changed = f"{100 * entry['changed_fraction']:.2f}" if "changed_fraction" in entry else "–"
        accuracy = f"{100 * entry['pixel_accuracy']:.2f}" if "pixel_accuracy" in entry else "–"
        table.append(f"| {name} | {int(entry['items'])} | {changed} | {accuracy} |")
    paragraphs.append("\n".join(table))
    return "\n\n".join(paragraphs)


def _saved_time(saved_at: str) -> pd.Timestamp:
    """The index's ISO timestamp as a naive UTC time (what the charts and table show)."""
    moment = pd.Timestamp(saved_at)
    return moment.tz_convert("UTC").tz_localize(None) if moment.tzinfo is not None else moment


def _percent(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(100 * value, digits)


def table_frame(rows: list[QualityRow], limit: int = TABLE_LIMIT) -> pd.DataFrame:
    """The first ``limit`` rows as the tab's table (columns :data:`TABLE_COLUMNS`, empty cells for no value)."""
    records = []
    for row in rows[:limit]:
        scores = row.scores or {}
        records.append([
            row.stem, _percent(scores.get("pixel_accuracy")),
            None if row.scores is None else round(scores["boundary_iou"], 4),
            None if row.scores is None else round(scores["iou"], 4),
            None if row.scores is None else round(scores["mae"], 5),
            _percent(row.changed_fraction, 3),
            None if row.mean_abs_delta is None else round(row.mean_abs_delta, 2),
            model_name(row), _saved_time(row.saved_at).strftime("%Y-%m-%d %H:%M"), row.status, row.note,
        ])
    return pd.DataFrame(records, columns=list(TABLE_COLUMNS))


def change_over_time(rows: list[QualityRow]) -> pd.DataFrame:
    """Chart data: one point per item saved with change statistics, columns "saved" (naive UTC time),
    "changed %", "model" and "stem", oldest first."""
    points = [(_saved_time(row.saved_at), 100 * row.changed_fraction, model_name(row), row.stem)
              for row in rows if row.changed_fraction is not None]
    frame = pd.DataFrame(points, columns=["saved", "changed %", "model", "stem"])
    frame["saved"] = pd.to_datetime(frame["saved"])
    return frame.sort_values(["saved", "stem"], ignore_index=True)


def accuracy_histogram(rows: list[QualityRow]) -> pd.DataFrame:
    """Chart data: how many scored items fall in each :data:`ACCURACY_BINS` bin (every bin listed, in order),
    columns "Pixel Accuracy" (the bin's label) and "items"."""
    counts = dict.fromkeys((label for _, _, label in ACCURACY_BINS), 0)
    for row in rows:
        if row.scores is None:
            continue
        value = row.scores["pixel_accuracy"]
        for low, high, label in ACCURACY_BINS:
            if low <= value < high or (high == 1.0 and value == 1.0):
                counts[label] += 1
                break
    return pd.DataFrame({"Pixel Accuracy": list(counts), "items": list(counts.values())})


QualityView = tuple[str, pd.DataFrame, pd.DataFrame, pd.DataFrame]
"""What the Quality tab shows: summary Markdown, table, changed-pixels-over-time points, accuracy histogram."""


def quality_view(rows: list[QualityRow], sort: str = DEFAULT_SORT) -> QualityView:
    """What the tab shows for ``rows`` sorted by the ``SORTS`` label ``sort``:
    (summary Markdown, table, changed-pixels-over-time points, Pixel Accuracy histogram)."""
    if sort not in SORTS:
        raise ToonmatteError(f"Unknown sort {sort!r}; choose one of: {', '.join(SORTS)}.")
    ordered = sort_rows(rows, SORTS[sort])
    text = [summary_markdown(summarize(rows))]
    if rows:
        text.append("\n".join(annotator_lines(rows)))
    ranking = ranking_line(rows)
    if ranking is not None:
        text.append(ranking)
    return "\n\n".join(text), table_frame(ordered), change_over_time(rows), accuracy_histogram(rows)
