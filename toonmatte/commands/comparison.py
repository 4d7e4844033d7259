"""The page of ``evaluate --models A,B --report PAGE``: models side by side on a held-out split, worst images first.

Images are ordered by the lowest Pixel Accuracy any model got on them (ties: the highest MAE), so
the images where a fine-tune helped or hurt most are at the top, each with every model's alpha and
its difference from the corrected alpha. Thumbnails are kept while the models are scored, so no
model runs twice.
"""
from __future__ import annotations

import base64
import html
from collections.abc import Callable
from pathlib import Path

import numpy as np

from toonmatte.commands.evaluate import COLUMNS, Scores, format_value, item_key
from toonmatte.commands.report import difference_image, thumbnail_png, write_text_atomic
from toonmatte.dataset import Item
from toonmatte.evaluation.metrics import LOWER_IS_BETTER
from toonmatte.imaging.imageio import load_image

STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
         "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}"
         "th{background:#f3f3f3;text-align:center}td:first-child,th:first-child{text-align:left}"
         "img{max-width:200px;display:block;background:repeating-conic-gradient(#ddd 0 25%,#fff 0 50%) 0 0/16px 16px}"
         ".best{font-weight:bold}.note{color:#555}")


class Gallery:
    """Thumbnails per image: the image and its corrected alpha once, each model's alpha and difference."""

    def __init__(self) -> None:
        self.images: dict[str, bytes] = {}
        self.truths: dict[str, bytes] = {}
        self.alphas: dict[tuple[str, str], tuple[bytes, bytes]] = {}

    def keeper(self, model: str) -> Callable[[Item, np.ndarray, np.ndarray], None]:
        """A callback for one model's (item, predicted alpha, corrected alpha)."""

        def keep(item: Item, pred: np.ndarray, gt: np.ndarray) -> None:
            key = item_key(item)
            if key not in self.images:
                assert item.im is not None  # a scored item: its image was matted
                self.images[key] = thumbnail_png(load_image(item.im).rgb)
                self.truths[key] = thumbnail_png(gt)
            self.alphas[model, key] = (thumbnail_png(pred), thumbnail_png(difference_image(pred, gt)))

        return keep


def worst_first(results: dict[str, Scores]) -> list[str]:
    """Images every model scored, by the lowest Pixel Accuracy of any model, then the highest MAE."""
    common = set.intersection(*(set(scores.per_image) for scores in results.values()))
    return sorted(common, key=lambda key: (min(s.per_image[key]["pixel_accuracy"] for s in results.values()),
                                           -max(s.per_image[key]["mae"] for s in results.values()), key))


def _img(data: bytes, alt: str) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}" alt="{html.escape(alt)}">'


def render(title: str, facts: list[tuple[str, str]], results: dict[str, Scores], gallery: Gallery,
           limit: int) -> str:
    esc, models = html.escape, list(results)
    means = {name: scores.mean for name, scores in results.items()}
    keys = [key for key in COLUMNS if all(key in mean for mean in means.values())]
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{esc(title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{esc(title)}</h1>",
             "<ul>" + "".join(f"<li>{esc(name)}: {esc(value)}</li>" for name, value in facts) + "</ul>",
             "<h2>Mean over images</h2><table><tr><th>metric</th>"
             + "".join(f"<th>{esc(name)}</th>" for name in models) + "</tr>"]
    for key in keys:
        pick = min if key in LOWER_IS_BETTER else max
        best = pick(means[name][key] for name in models)
        cells = "".join(f'<td{" class=best" if means[name][key] == best and len(models) > 1 else ""}>'
                        f"{format_value(key, means[name][key])}</td>" for name in models)
        parts.append(f"<tr><td>{esc(COLUMNS[key])}{' (lower is better)' if key in LOWER_IS_BETTER else ''}</td>"
                     f"{cells}</tr>")
    parts.append("<tr><td>images</td>" + "".join(f"<td>{len(results[name].per_image)}</td>" for name in models)
                 + "</tr></table>")
    order = worst_first(results)[:max(0, limit)]
    parts.append(f"<h2>Worst {len(order)} images</h2><p class=note>By the lowest Pixel Accuracy of any model. "
                 "Difference: red where a model's alpha is too high, blue where it is too low.</p>"
                 "<table><tr><th>item</th><th>image</th><th>corrected alpha</th>"
                 + "".join(f"<th>{esc(name)}</th><th>difference</th>" for name in models) + "</tr>")
    for key in order:
        row = [f"<td>{esc(key)}</td><td>{_img(gallery.images[key], 'image')}</td>"
               f"<td>{_img(gallery.truths[key], 'corrected alpha')}</td>"]
        for name in models:
            alpha, difference = gallery.alphas[name, key]
            score = results[name].per_image[key]
            caption = (f"PixAcc {format_value('pixel_accuracy', score['pixel_accuracy'])}, "
                       f"MAE {format_value('mae', score['mae'])}")
            row.append(f"<td>{_img(alpha, f'{name} alpha')}{esc(caption)}</td>"
                       f"<td>{_img(difference, 'difference')}</td>")
        parts.append("<tr>" + "".join(row) + "</tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


def write_comparison(path: Path, facts: list[tuple[str, str]], results: dict[str, Scores], gallery: Gallery,
                     limit: int) -> None:
    write_text_atomic(path, render("toonmatte model comparison", facts, results, gallery, limit))
