"""``python -m toonmatte report ROOT --out report.html``: a self-contained HTML quality report.

The model's alphas come from ``--pred DIR`` (files named by stem, e.g. the output of
``python -m toonmatte predict``) or from running ``--model NAME`` over the images (default
toonout, which falls back to the classical engine, named as such in the report, when its
weights are missing). Each is scored against the dataset's corrected ``gt``; the page has the
mean of every metric and the worst images (lowest ToonOut Pixel Accuracy) as inline PNG
thumbnails: image, model alpha, corrected alpha and their difference.
"""
from __future__ import annotations

import argparse
import base64
import heapq
import html
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import count
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from toonmatte.commands.evaluate import COLUMNS, Scores, evaluable_items, format_value, matte_files
from toonmatte.dataset import SPLITS, Item, list_items
from toonmatte.errors import BadImageError, ToonmatteError
from toonmatte.evaluation.metrics import LOWER_IS_BETTER
from toonmatte.imaging.imageio import load_image, load_mask

THUMBNAIL = 256
"""Longest side of the thumbnails, in pixels."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, help="dataset folder laid out as <split>/<generation>/{im,gt,an}/<stem>.png")
    parser.add_argument("--out", type=Path, required=True, help="HTML file to write")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--pred", type=Path, help="folder of the model's alphas named <stem>.png")
    source.add_argument("--model", default=None, help="model to run over the images instead (default toonout; "
                        "the classical fallback when its weights are missing)")
    parser.add_argument("--weights", default=None, help="checkpoint for --model")
    parser.add_argument("--device", default=None, help="device for --model: auto (default), cpu, cuda, cuda:N")
    parser.add_argument("--split", choices=SPLITS, default=None, help="report on one split (default: all items)")
    parser.add_argument("--worst", type=int, default=12, help="how many of the worst images to show (default 12)")
    parser.add_argument("--hce", action="store_true", help="also compute HCE (human correction effort; "
                        "roughly triples the scoring time)")


@dataclass
class Example:
    """One image shown in the report, with its thumbnails as PNG bytes."""

    key: str
    scores: dict[str, float]
    image: bytes
    model_alpha: bytes
    corrected_alpha: bytes
    difference: bytes


def thumbnail_png(array: np.ndarray, size: int = THUMBNAIL) -> bytes:
    """Shrink so the longest side is at most ``size`` and encode as PNG (RGB arrays in RGB order)."""
    height, width = array.shape[:2]
    scale = min(1.0, size / max(height, width))
    if scale < 1.0:
        array = cv2.resize(array, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", array)
    if not ok:
        raise ToonmatteError("A thumbnail could not be encoded as PNG; check that OpenCV is installed correctly.")
    return encoded.tobytes()


def difference_image(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """RGB map of ``pred - gt``: red where the model kept too much, blue where it dropped foreground, black where
    equal."""
    delta = pred.astype(np.int16) - gt.astype(np.int16)
    rgb = np.zeros(pred.shape + (3,), np.uint8)
    rgb[..., 0] = np.clip(delta, 0, 255)
    rgb[..., 2] = np.clip(-delta, 0, 255)
    return rgb


class WorstExamples:
    """Keeps the ``limit`` images with the lowest Pixel Accuracy seen so far (ties: higher MAE is worse)."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self._heap: list[tuple[float, float, int, Example]] = []
        self._order = count()

    def offer(self, key: str, scores: dict[str, float], image_path: Path, pred: np.ndarray, gt: np.ndarray) -> None:
        rank = (-scores["pixel_accuracy"], scores["mae"], next(self._order))
        if self.limit == 0 or (len(self._heap) == self.limit and rank <= self._heap[0][:3]):
            return
        example = Example(key, scores, thumbnail_png(load_image(image_path).rgb), thumbnail_png(pred),
                          thumbnail_png(gt), thumbnail_png(difference_image(pred, gt)))
        entry = (*rank, example)
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, entry)
        else:
            heapq.heapreplace(self._heap, entry)

    def worst_first(self) -> list[Example]:
        return [entry[-1] for entry in sorted(self._heap, reverse=True)]


def _prediction_source(args: argparse.Namespace) -> tuple[Callable[[Item], np.ndarray | None], str, str | None]:
    """(item -> model alpha or None when there is none, engine description, fallback notice)."""
    if args.pred is not None:
        files = matte_files(args.pred)
        def stored(item: Item) -> np.ndarray | None:
            return load_mask(files[item.stem]) if item.stem in files else None

        return stored, f"predictions in {args.pred}", None
    from toonmatte.pipeline import Matter

    matter = Matter(model=args.model or "toonout", weights=args.weights, device=args.device)
    return (lambda item: matter.predict(item.im).alpha), matter.title, matter.fallback_reason


def collect(items: list[Item], predict: Callable[[Item], np.ndarray | None], worst: WorstExamples,
            hce: bool) -> Scores:
    scores = Scores()
    for item in tqdm(items, desc="report", unit="image"):
        key = item.name
        try:
            pred = predict(item)
            if pred is None:
                scores.skipped[key] = "no prediction with this stem"
                continue
            gt = load_mask(item.gt)
            scores.add(key, pred, gt, hce)
            if key in scores.per_image:
                worst.offer(key, scores.per_image[key], item.im, pred, gt)
        except BadImageError as error:
            scores.skipped[key] = str(error)
    return scores


def _img(data: bytes, alt: str) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}" alt="{html.escape(alt)}">'


def render(title: str, facts: list[tuple[str, str]], notice: str | None, scores: Scores,
           examples: list[Example]) -> str:
    mean = scores.mean
    keys = [key for key in COLUMNS if key in mean]
    esc = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{esc(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}"
        "th{background:#f3f3f3;text-align:center}"
        "td:first-child,th:first-child{text-align:left}img{max-width:256px;display:block;"
        "background:repeating-conic-gradient(#ddd 0 25%,#fff 0 50%) 0 0/16px 16px}"
        ".notice{background:#fff3cd;border:1px solid #e0c36c;padding:.6em 1em}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        "<ul>" + "".join(f"<li>{esc(name)}: {esc(value)}</li>" for name, value in facts) + "</ul>",
    ]
    if notice:
        parts.append(f'<p class="notice">{esc(notice)}</p>')
    parts.append("<h2>Mean over images</h2><table><tr><th>metric</th><th>mean</th></tr>")
    parts += [f"<tr><td>{esc(COLUMNS[k])}{' (lower is better)' if k in LOWER_IS_BETTER else ''}</td>"
              f"<td>{format_value(k, mean[k])}</td></tr>" for k in keys]
    parts.append("</table>")
    parts.append(f"<h2>Worst {len(examples)} images by Pixel Accuracy</h2>"
                 "<p>Difference: red where the model's alpha is too high, blue where it is too low.</p>"
                 "<table><tr><th>item</th><th>scores</th><th>image</th><th>model alpha</th>"
                 "<th>corrected alpha</th><th>difference</th></tr>")
    for example in examples:
        listed = "<br>".join(f"{esc(COLUMNS[k])} {format_value(k, example.scores[k])}"
                             for k in keys if k in example.scores)
        parts.append(f"<tr><td>{esc(example.key)}</td><td>{listed}</td>"
                     f"<td>{_img(example.image, 'image')}</td><td>{_img(example.model_alpha, 'model alpha')}</td>"
                     f"<td>{_img(example.corrected_alpha, 'corrected alpha')}</td>"
                     f"<td>{_img(example.difference, 'difference')}</td></tr>")
    parts.append("</table>")
    if scores.skipped:
        parts.append(f"<h2>Not scored ({len(scores.skipped)})</h2><ul>")
        parts += [f"<li>{esc(key)}: {esc(reason)}</li>" for key, reason in scores.skipped.items()]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_text_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def run(args: argparse.Namespace) -> int:
    if args.split is not None:
        items = evaluable_items(args.root, args.split)
    else:
        items = [item for item in list_items(args.root) if item.im is not None and item.gt is not None]
        if not items:
            raise ToonmatteError(f"No image with a ground truth under {args.root}; expected "
                                 f"<split>/<generation>/im/<stem>.png and gt/<stem>.png.")
    if not args.out.parent.is_dir():
        raise ToonmatteError(f"The folder {args.out.parent} does not exist; create it or choose another --out.")
    predict, engine, notice = _prediction_source(args)
    worst = WorstExamples(args.worst)
    scores = collect(items, predict, worst, args.hce)
    if not scores.per_image:
        key, reason = next(iter(scores.skipped.items()))
        raise ToonmatteError(f"No image could be scored, so no report was written ({key}: {reason}); "
                             f"check --pred or the dataset.")
    facts = [("dataset", str(args.root)), ("split", args.split or "all"), ("model alphas", engine),
             ("images scored", str(len(scores.per_image))), ("not scored", str(len(scores.skipped))),
             ("written", datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))]
    page = render("toonmatte quality report", facts, notice, scores, worst.worst_first())
    write_text_atomic(args.out, page)
    print(f"Wrote {args.out} ({len(scores.per_image)} images, worst {len(worst.worst_first())} shown).")
    return 0
