"""What a run folder records: ``metrics.csv`` (a row per epoch), ``curves.png`` and ``card.json``.

Every file is written to a temporary name and renamed over the old one, so a reader (or a kill)
never finds half a file.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np

from toonmatte.imaging.imageio import write_png_atomic

METRIC_COLUMNS = ("epoch", "step", "train_loss", "pixel_loss", "gradient_loss", "val_pa", "val_mae", "lr",
                  "images_per_s", "seconds")
CURVES = (("train_loss", "train loss", (200, 80, 30)), ("val_pa", "val Pixel Accuracy", (40, 140, 40)),
          ("val_mae", "val MAE", (40, 40, 200)))  # column, title, BGR colour
PANEL = (360, 260)  # width, height of each plot
MARGIN = (58, 28, 34, 14)  # left, top, bottom, right


def write_bytes_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def write_json(path: Path, payload: Mapping) -> None:
    write_bytes_atomic(path, (json.dumps(payload, indent=2) + "\n").encode())


def write_metrics(path: Path, rows: Sequence[Mapping[str, float]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=METRIC_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(path, buffer.getvalue().encode())


def write_curves(path: Path, rows: Sequence[Mapping[str, float]]) -> None:
    """Train loss, val Pixel Accuracy and val MAE against the epoch, side by side."""
    panels = []
    for column, title, colour in CURVES:
        points = [(row["epoch"], row[column]) for row in rows
                  if row.get(column) is not None and math.isfinite(row[column])]
        panels.append(plot([x for x, _ in points], [y for _, y in points], title, colour))
    write_png_atomic(path, cv2.cvtColor(np.hstack(panels), cv2.COLOR_BGR2RGB))


def plot(xs: Sequence[float], ys: Sequence[float], title: str, colour: tuple[int, int, int]) -> np.ndarray:
    """One line plot with its range written on the axes (OpenCV: no plotting library needed)."""
    width, height = PANEL
    left, top, bottom, right = MARGIN
    image = np.full((height, width, 3), 255, np.uint8)
    font, grey = cv2.FONT_HERSHEY_SIMPLEX, (90, 90, 90)
    cv2.putText(image, title, (left, 18), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(image, (left, top), (width - right, height - bottom), grey, 1)
    if not xs:
        return image
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5 * max(abs(y0), 1e-3), y1 + 0.5 * max(abs(y1), 1e-3)
    for value, y in ((y1, top + 10), (y0, height - bottom)):
        cv2.putText(image, f"{value:.4g}", (2, y), font, 0.38, grey, 1, cv2.LINE_AA)
    cv2.putText(image, f"epoch {x0:g}", (left, height - 12), font, 0.38, grey, 1, cv2.LINE_AA)
    cv2.putText(image, f"{x1:g}", (width - right - 24, height - 12), font, 0.38, grey, 1, cv2.LINE_AA)

    def point(x: float, y: float) -> tuple[int, int]:
        fx = 0.5 if x1 == x0 else (x - x0) / (x1 - x0)
        fy = (y - y0) / (y1 - y0)
        return (round(left + 6 + fx * (width - left - right - 12)),
                round(height - bottom - 6 - fy * (height - top - bottom - 12)))

    points = [point(x, y) for x, y in zip(xs, ys)]
    if len(points) > 1:
        cv2.polylines(image, [np.array(points, np.int32)], False, colour, 2, cv2.LINE_AA)
    for p in points:
        cv2.circle(image, p, 3, colour, -1, cv2.LINE_AA)
    return image


def versions() -> dict[str, str]:
    """Versions of the packages that shape a run's result."""
    found = {"python": platform.python_version()}
    for package in ("toonmatte", "torch", "torchvision", "accelerate", "numpy", "opencv-python-headless"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    if "toonmatte" not in found:  # run from a checkout: the version in pyproject.toml
        pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
        if pyproject.is_file():
            import tomllib

            found["toonmatte"] = tomllib.loads(pyproject.read_text())["project"]["version"]
    return found
