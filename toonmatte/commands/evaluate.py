"""``python -m toonmatte evaluate``: score mattes with ToonOut's metrics.

Two modes:
- ``--pred DIR --gt DIR``: pair predicted and ground-truth alphas by file stem, report the
  files that have no partner, print per-image scores and their means.
- ``--models toonout,birefnet,fallback --data ROOT --split test``: run each model over the
  split's ``im`` images, score against ``gt`` and print the models side by side. A model that
  cannot be loaded is reported and skipped; a zoo model is never silently replaced by the
  classical fallback (only the name "fallback" evaluates the fallback). A model may also be a
  checkpoint's path, such as a fine-tune's ``RUN/best.safetensors``; ``--report PAGE`` writes an
  HTML page with the models side by side, worst images first (``toonmatte.commands.comparison``).
"""
from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from toonmatte.dataset import SPLITS, Item, list_items
from toonmatte.errors import BadImageError, ToonmatteError
from toonmatte.evaluation.metrics import LOWER_IS_BETTER, image_metrics, mean_metrics
from toonmatte.imaging.imageio import IMAGE_EXTENSIONS, load_mask

if TYPE_CHECKING:
    from toonmatte.pipeline import Matter

FALLBACK = "fallback"
CUTOUT_SUFFIX = "_rgba"
COLUMNS = {"pixel_accuracy": "PixAcc", "mae": "MAE", "s_measure": "S", "e_measure": "E", "f_measure": "F",
           "weighted_f": "wF", "iou": "IoU", "boundary_iou": "BIoU", "hce": "HCE"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", type=Path, help="folder of predicted alphas, <stem>.png (with --gt)")
    parser.add_argument("--gt", type=Path, help="folder of ground-truth alphas, <stem>.png (with --pred)")
    parser.add_argument("--models", type=_names, help="comma-separated models to run and compare, e.g. "
                        "toonout,birefnet,fallback (with --data); NAME=PATH uses that checkpoint for a zoo model, "
                        "e.g. toonout,toonout=runs/epoch_100.pth; a path is a checkpoint or fine-tune run, "
                        "e.g. toonout,runs/anime/best.safetensors")
    parser.add_argument("--data", type=Path, help="dataset root laid out as <split>/<generation>/{im,gt,an}/<stem>.png")
    parser.add_argument("--split", default="test", choices=SPLITS,
                        help="split to evaluate with --models (default test)")
    parser.add_argument("--device", default=None, help="device for --models: auto (default), cpu, cuda, cuda:N")
    parser.add_argument("--hce", action="store_true", help="also compute HCE (human correction effort); it roughly "
                        "triples the scoring time")
    parser.add_argument("--uncertainty", action="store_true", help="with --data: how well the uncertainty score "
                        "ranks the corrected items by how much people changed them")
    parser.add_argument("--json", type=Path, help="write the scores as JSON (per_image and mean)")
    parser.add_argument("--csv", type=Path, help="write the per-image scores as CSV")
    parser.add_argument("--report", type=Path, help="with --models: write an HTML page comparing the models side by "
                        "side, worst images first")
    parser.add_argument("--worst", type=int, default=24, help="how many images the --report page shows (default 24)")


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected at least one model name, like toonout,fallback")
    return names


@dataclass
class Scores:
    """Per-image metrics of one set of predictions, and what could not be scored (name -> reason)."""

    per_image: dict[str, dict[str, float]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def mean(self) -> dict[str, float]:
        return mean_metrics(self.per_image.values())

    def add(self, name: str, pred: np.ndarray, gt: np.ndarray, hce: bool) -> None:
        if pred.shape != gt.shape:
            self.skipped[name] = (f"prediction is {pred.shape[1]}x{pred.shape[0]} "
                                  f"but ground truth is {gt.shape[1]}x{gt.shape[0]}")
        else:
            self.per_image[name] = image_metrics(pred, gt, hce=hce)


def matte_files(folder: Path) -> dict[str, Path]:
    """Image files of a folder by stem, ignoring hidden files. ``predict`` writes ``<stem>.png`` (alpha)
    and ``<stem>_rgba.png`` (cut-out): a cut-out counts as ``<stem>`` when there is no ``<stem>.png``
    (its alpha band is read) and is ignored otherwise. Two files with one stem are refused."""
    if not folder.is_dir():
        raise ToonmatteError(f"The folder {folder} does not exist; check the path.")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS:
            if path.stem in files:
                raise ToonmatteError(f"{files[path.stem].name} and {path.name} in {folder} share "
                                     "a stem; keep one of them.")
            files[path.stem] = path
    cutouts = {stem.removesuffix(CUTOUT_SUFFIX): path for stem, path in files.items() if stem.endswith(CUTOUT_SUFFIX)}
    plain = {stem: path for stem, path in files.items() if not stem.endswith(CUTOUT_SUFFIX)}
    return {**{stem: path for stem, path in cutouts.items() if stem not in plain}, **plain}


def pair_by_stem(pred_dir: Path, gt_dir: Path) -> tuple[list[tuple[str, Path, Path]], list[str], list[str]]:
    """(stem, pred, gt) pairs, then the stems found only among predictions, then only among ground truths."""
    preds, gts = matte_files(pred_dir), matte_files(gt_dir)
    pairs = [(stem, preds[stem], gts[stem]) for stem in sorted(preds.keys() & gts.keys())]
    return pairs, sorted(preds.keys() - gts.keys()), sorted(gts.keys() - preds.keys())


def score_pairs(pairs: Sequence[tuple[str, Path, Path]], hce: bool = False, desc: str = "scoring") -> Scores:
    scores = Scores()
    for stem, pred_path, gt_path in tqdm(pairs, desc=desc, unit="image"):
        try:
            scores.add(stem, load_mask(pred_path), load_mask(gt_path), hce)
        except BadImageError as error:
            scores.skipped[stem] = str(error)
    return scores


def item_key(item: Item) -> str:
    """How an image of a dataset split is named in results: ``<generation>/<stem>``."""
    return f"{item.generation}/{item.stem}"


def evaluable_items(root: Path, split: str) -> list[Item]:
    items = [item for item in list_items(root, [split]) if item.im is not None and item.gt is not None]
    if not items:
        raise ToonmatteError(f"No image with a ground truth in {root / split}; expected "
                             f"{split}/<generation>/im/<stem>.png and gt/<stem>.png (run split first?).")
    return items


def load_matter(entry: str, device: str | None) -> Matter:
    """A Matter for a ``--models`` entry (NAME or NAME=PATH) that is really that model: no silent fallback."""
    from toonmatte.pipeline import Matter

    name, _, weights = entry.partition("=")
    matter = Matter(model=name, weights=weights or None, device=device, allow_fallback=name == FALLBACK)
    if matter.is_fallback and name != FALLBACK:
        raise ToonmatteError(matter.fallback_reason or f"{name} could not be loaded.")
    return matter


def score_model(predict: Callable[[Path], np.ndarray], items: Sequence[Item], hce: bool, desc: str,
                keep: Callable[[Item, np.ndarray, np.ndarray], None] | None = None) -> Scores:
    """Scores of ``predict`` (an im path -> uint8 alpha) over ``items`` against their gt; ``keep`` gets
    each scored (item, prediction, gt)."""
    scores = Scores()
    for item in tqdm(items, desc=desc, unit="image"):
        try:
            pred, gt = predict(item.im), load_mask(item.gt)
            scores.add(item_key(item), pred, gt, hce)
            if keep is not None and item_key(item) in scores.per_image:
                keep(item, pred, gt)
        except BadImageError as error:
            scores.skipped[item_key(item)] = str(error)
    return scores


def format_value(key: str, value: float) -> str:
    return f"{value:.1f}" if key == "hce" else f"{value:.4f}"


def format_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    rows = [list(header)] + [list(row) for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def per_image_table(scores: Scores) -> str:
    mean = scores.mean
    keys = list(mean)
    rows = [[name] + [format_value(k, values[k]) for k in keys] for name, values in scores.per_image.items()]
    rows.append([f"mean ({len(scores.per_image)})"] + [format_value(k, mean[k]) for k in keys])
    return format_table(["image"] + [COLUMNS[k] for k in keys], rows)


def side_by_side_table(results: dict[str, Scores]) -> str:
    """Metrics as rows, models as columns (means); the arrow says which way is better."""
    means = {name: scores.mean for name, scores in results.items()}
    keys = [key for key in COLUMNS if all(key in mean for mean in means.values())]
    rows = [[f"{COLUMNS[k]} {'(lower better)' if k in LOWER_IS_BETTER else ''}".strip()]
            + [format_value(k, means[name][k]) for name in results] for k in keys]
    rows.append(["images"] + [str(len(scores.per_image)) for scores in results.values()])
    return format_table(["metric"] + list(results), rows)


def _report_unscored(skipped: dict[str, str], what: str) -> None:
    for name, reason in skipped.items():
        print(f"skipped {what}{name}: {reason}")


def _list_unmatched(names: list[str], what: str) -> None:
    if names:
        shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        print(f"{len(names)} {what}: {shown}")


def _write_csv(path: Path, header: list[str], rows: Iterable[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _write_json(path: Path, payload: dict) -> None:
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


def run_pairs(args: argparse.Namespace) -> int:
    pairs, pred_only, gt_only = pair_by_stem(args.pred, args.gt)
    _list_unmatched(pred_only, f"predictions in {args.pred} have no ground truth")
    _list_unmatched(gt_only, f"ground truths in {args.gt} have no prediction")
    if not pairs:
        raise ToonmatteError(f"No file in {args.pred} has a ground truth with the same stem in {args.gt}; "
                             f"name each prediction like its ground truth.")
    scores = score_pairs(pairs, args.hce)
    _report_unscored(scores.skipped, "")
    if not scores.per_image:
        raise ToonmatteError("No pair could be scored; see the reasons above.")
    print(per_image_table(scores))
    if args.json:
        _write_json(args.json, {"per_image": scores.per_image, "mean": scores.mean,
                                "unmatched": {"pred": pred_only, "gt": gt_only}, "skipped": scores.skipped})
    if args.csv:
        keys = list(scores.per_image[next(iter(scores.per_image))])
        _write_csv(args.csv, ["stem"] + keys, ([stem] + [values[k] for k in keys]
                                                for stem, values in scores.per_image.items()))
    return 0


def run_models(args: argparse.Namespace) -> int:
    from toonmatte.commands.comparison import Gallery, write_comparison

    if args.report is not None and not args.report.parent.is_dir():
        raise ToonmatteError(f"The folder {args.report.parent} does not exist; create it or choose another --report.")
    items = evaluable_items(args.data, args.split)
    print(f"{len(items)} images in {args.data / args.split}")
    gallery = Gallery() if args.report is not None else None
    results: dict[str, Scores] = {}
    engines: dict[str, str] = {}
    unavailable: dict[str, str] = {}
    for name in dict.fromkeys(args.models):
        try:
            matter = load_matter(name, args.device)
        except ToonmatteError as error:
            unavailable[name] = str(error)
            print(f"{name}: skipped, {error}")
            continue
        engines[name] = matter.engine

        def predict(path: Path, matter: Matter = matter) -> np.ndarray:
            return matter.predict(path).alpha

        results[name] = score_model(predict, items, args.hce, desc=name,
                                    keep=gallery.keeper(name) if gallery is not None else None)
        _report_unscored(results[name].skipped, f"{name} ")
    results = {name: scores for name, scores in results.items() if scores.per_image}
    if not results:
        raise ToonmatteError("No model produced a score; see the reasons above.")
    print(side_by_side_table(results))
    if gallery is not None:
        facts = [("dataset", str(args.data)), ("split", args.split)] + [
            (name, engines[name]) for name in results]
        write_comparison(args.report, facts, results, gallery, args.worst)
        print(f"Wrote {args.report} (worst {min(args.worst, len(items))} images shown).")
    if args.json:
        _write_json(args.json, {
            "split": args.split,
            "models": {name: {"engine": engines[name], "per_image": s.per_image, "mean": s.mean, "skipped": s.skipped}
                       for name, s in results.items()},
            "unavailable": unavailable,
        })
    if args.csv:
        keys = [k for k in COLUMNS if all(k in s.mean for s in results.values())]
        _write_csv(args.csv, ["model", "image"] + keys,
                   ([name, image] + [values[k] for k in keys]
                    for name, s in results.items() for image, values in s.per_image.items()))
    return 0


def run_uncertainty(args: argparse.Namespace) -> int:
    """How well the uncertainty score ranks a dataset's corrected items by how much people changed them."""
    from toonmatte.dataset import DatasetStore
    from toonmatte.evaluation.uncertainty import ranking_quality, uncertainty

    with DatasetStore(args.data) as store:
        rows = []
        for record in store.items():
            pair = store.prediction_pair(record.stem)
            if pair is None:
                continue
            prediction, gt = pair
            changed = float(np.abs(prediction.astype(np.int16) - gt.astype(np.int16)).mean()) / 255.0
            rows.append((record.stem, uncertainty(prediction), changed))
    if len(rows) < 3:
        raise ToonmatteError(f"{args.data} has {len(rows)} saved items with the model's prediction kept beside them; "
                             "the ranking needs at least 3 (save corrections in the studio first).")
    changes = np.array([changed for _, _, changed in rows])
    print(f"{len(rows)} corrected items; how well each sign ranks them by the change people made:")
    print(f"{'sign':<12}{'spearman':>10}{'top 20 %':>10}")
    for name in ("soft", "fragments", "score"):
        rho, found = ranking_quality(np.array([getattr(u, name) for _, u, _ in rows]), changes)
        print(f"{name:<12}{rho:>10.3f}{found:>10.0%}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.uncertainty:
        if args.data is None:
            raise ToonmatteError("--uncertainty needs --data ROOT, a dataset saved by the studio; see --help.")
        return run_uncertainty(args)
    if args.models:
        if args.data is None or args.pred or args.gt:
            raise ToonmatteError("--models needs --data ROOT (and no --pred/--gt); see --help.")
        return run_models(args)
    if args.pred is None or args.gt is None or args.data:
        raise ToonmatteError("Pass either --pred DIR --gt DIR, or --models NAMES --data ROOT; see --help.")
    return run_pairs(args)
