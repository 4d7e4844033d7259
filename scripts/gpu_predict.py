"""End-to-end ``Matter.predict`` on a CUDA GPU, with and without the backbone's CUDA graphs.

Usage (from the repository root, on a machine with a GPU): ``python scripts/gpu_predict.py``.

Writes a checkpoint with the golden deterministic weights (``toonmatte.model.golden_fill``; the real
ToonOut weights need the Hub; speed does not depend on the values), loads it through ``Matter``
as the CLI and the studio do, and prints per-image latency (preprocessing, transfer and postprocessing
included), batched throughput, and how far the graphed mattes are from eager ones.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from toonmatte.model.birefnet import build_model
from toonmatte.model.golden_fill import fill_state_dict
from toonmatte.pipeline import Matter


def golden_checkpoint(folder: Path) -> Path:
    model = build_model()
    path = folder / "golden.pth"
    torch.save(fill_state_dict(model.state_dict(), salt="toonmatte"), path)
    return path


def drawn_image(height: int, width: int, seed: int) -> np.ndarray:
    """A flat-shaded picture: gradient background, a few filled ellipses with dark outlines."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    image = (np.array([90, 140, 200]) * (1 - ramp) + np.array([230, 220, 180]) * ramp).astype(np.uint8)
    image = np.ascontiguousarray(np.broadcast_to(image, (height, width, 3)))
    for _ in range(6):
        center = (int(rng.integers(width // 4, 3 * width // 4)), int(rng.integers(height // 4, 3 * height // 4)))
        axes = (int(rng.integers(width // 12, width // 5)), int(rng.integers(height // 12, height // 4)))
        colour, angle = tuple(int(c) for c in rng.integers(0, 256, 3)), float(rng.integers(0, 180))
        cv2.ellipse(image, center, axes, angle, 0, 360, colour, -1)
        cv2.ellipse(image, center, axes, angle, 0, 360, (20, 20, 30), 4)
    return image


def latency(matter: Matter, images: list[np.ndarray]) -> float:
    for image in images[:3]:  # warm-up: cuDNN plans, and the graphs' capture on a shape's second call
        matter.predict(image)
    times = []
    for image in images:
        start = time.perf_counter()
        matter.predict(image)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    images = [drawn_image(1536, 1024, seed) for seed in range(12)]
    with tempfile.TemporaryDirectory() as folder:
        weights = golden_checkpoint(Path(folder))
        graphed = Matter(weights=weights, device="cuda")
        eager = Matter(weights=weights, device="cuda", cuda_graphs=False)
    print(f"Matter on {torch.cuda.get_device_name()}: {graphed.title}, {graphed.precision}, "
          f"input {graphed.spec.input_size(1536, 1024)} for a 1536x1024 image")
    for name, matter in (("CUDA graphs", graphed), ("eager", eager)):
        print(f"  {name}: predict latency {latency(matter, images) * 1000:.1f} ms per image (median of 12)")
    print(f"  input shapes replayed from CUDA graphs after the runs: {graphed.graphed_shapes}")
    deltas = [np.abs(graphed.predict(image).alpha.astype(int) - eager.predict(image).alpha.astype(int)).max()
              for image in images[:4]]
    print(f"  graphed vs eager alpha: max |delta| {max(deltas)}/255 over 4 images")
    for batch_size in (4, 8):
        for name, matter in (("CUDA graphs", graphed), ("eager", eager)):
            matter.predict_batch(images[:batch_size], batch_size=batch_size)
            matter.predict_batch(images[:batch_size], batch_size=batch_size)
            start = time.perf_counter()
            matter.predict_batch(images[:batch_size], batch_size=batch_size)
            seconds = time.perf_counter() - start
            print(f"  predict_batch, batch {batch_size}, {name}: {batch_size / seconds:.1f} images/s")


if __name__ == "__main__":
    main()
