"""``python -m benchmarks.fallback``: the classical fallback against a naive baseline.

The fallback (``toonmatte.imaging.fallback``) is the whole product offline. This holds it against what
one writes in an afternoon, border flood fill seeding GrabCut (``benchmarks.fallback_baseline``):

- **IoU per category** of drawn cases with exact ground truth (``benchmarks.fallback_cases``):
  mean and worst over ``--seeds`` drawings at ``--size``, for both, and how many cases each wins;
- **the samples** (``--samples``, default ``../shared/samples``): they come without ground truth,
  so each method's foreground share and the two methods' agreement (IoU of one against the
  other) are printed, or the IoU against reference alphas where ``--references`` holds a PNG
  named after the image;
- **time** at ``--timing-size`` (1024): fallback and baseline alternated on the same drawings in
  one run, so a busy machine weighs on both; medians and their ratio.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from benchmarks.fallback_baseline import baseline_alpha
from benchmarks.fallback_cases import CATEGORIES, make_case
from toonmatte.evaluation.metrics import iou
from toonmatte.imaging.fallback import fallback_alpha

DEFAULT_SAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "samples"
Matte = Callable[[np.ndarray], np.ndarray]


@dataclass
class Scores:
    """IoU of the fallback and of the baseline on each drawing of one category."""

    category: str
    fallback: list[float]
    baseline: list[float]

    @property
    def wins(self) -> int:
        """Drawings on which the fallback scores at least the baseline."""
        return sum(f >= b for f, b in zip(self.fallback, self.baseline))


def score_category(category: str, size: int, seeds: range) -> Scores:
    """IoU of both methods on ``category`` drawn at ``size`` with each of ``seeds``."""
    fallback, baseline = [], []
    for seed in seeds:
        case = make_case(category, size, seed)
        fallback.append(iou(fallback_alpha(case.rgb), case.alpha))
        baseline.append(iou(baseline_alpha(case.rgb), case.alpha))
    return Scores(category, fallback, baseline)


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return np.ascontiguousarray(image[..., ::-1])


def time_alternated(images: list[np.ndarray], methods: dict[str, Matte], repeats: int) -> dict[str, float]:
    """Median seconds per image of each method, the methods taking turns on every image."""
    for matte in methods.values():  # warm-up: first calls pay for OpenCV's lazy initialisation
        matte(images[0])
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(repeats):
        for image in images:
            for name, matte in methods.items():
                start = time.perf_counter()
                matte(image)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def print_categories(size: int, seeds: int) -> None:
    print(f"## IoU per category ({seeds} drawings each, {size}x{size})\n")
    print("| category | fallback mean | fallback worst | baseline mean | baseline worst | fallback >= baseline |")
    print("|---|---|---|---|---|---|")
    for category in CATEGORIES:
        s = score_category(category, size, range(seeds))
        print(f"| {category} | {np.mean(s.fallback):.4f} | {min(s.fallback):.4f} | {np.mean(s.baseline):.4f} | "
              f"{min(s.baseline):.4f} | {s.wins}/{seeds} |")


def print_samples(folder: Path, references: Path | None) -> None:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})
    if not paths:
        print(f"\n(no images in {folder})")
        return
    print(f"\n## Samples ({folder})\n")
    print("| image | fallback foreground | baseline foreground | agreement IoU | fallback IoU | baseline IoU |")
    print("|---|---|---|---|---|---|")
    missing = 0
    for path in paths:
        rgb = read_rgb(path)
        fallback, baseline = fallback_alpha(rgb), baseline_alpha(rgb)
        reference = references / f"{path.stem}.png" if references else None
        if reference is not None and reference.is_file():
            gt = cv2.imread(str(reference), cv2.IMREAD_UNCHANGED)
            gt = gt[..., 3] if gt.ndim == 3 and gt.shape[2] == 4 else gt if gt.ndim == 2 else gt[..., 0]
            scored = f"{iou(fallback, gt):.4f} | {iou(baseline, gt):.4f}"
        else:
            missing += 1
            scored = "- | -"
        print(f"| {path.name} | {(fallback > 128).mean():.3f} | {(baseline > 128).mean():.3f} | "
              f"{iou(fallback, baseline):.3f} | {scored} |")
    if missing:
        print(f"\n{missing} of {len(paths)} images have no reference alpha"
              f"{f' in {references}' if references else ' (no --references)'}: agreement only.")


def print_timing(size: int, repeats: int) -> None:
    images = [make_case(category, size, 0).rgb for category in CATEGORIES]
    medians = time_alternated(images, {"fallback": fallback_alpha, "baseline": baseline_alpha}, repeats)
    print(f"\n## Time per image at {size}x{size} (median of {repeats} x {len(images)} images, alternated)\n")
    print("| fallback | baseline | ratio |")
    print("|---|---|---|")
    print(f"| {medians['fallback']:.3f} s | {medians['baseline']:.3f} s | "
          f"{medians['fallback'] / medians['baseline']:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fallback", description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="side of the drawn cases scored (default 1024)")
    parser.add_argument("--seeds", type=int, default=3, help="drawings per category (default 3)")
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES,
                        help="folder of real images to run both on (default ../shared/samples; skipped if absent)")
    parser.add_argument("--references", type=Path,
                        help="folder of reference alphas (PNG named after each sample, e.g. ToonOut's cut-outs)")
    parser.add_argument("--timing-size", type=int, default=1024, help="side of the drawings timed (default 1024)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds over the drawings (default 3)")
    args = parser.parse_args(argv)
    print(f"# classical fallback vs border flood + GrabCut, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), {datetime.date.today()}\n")
    print_categories(args.size, args.seeds)
    if args.samples.is_dir():
        print_samples(args.samples, args.references)
    else:
        print(f"\n(no samples folder at {args.samples})")
    print_timing(args.timing_size, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
