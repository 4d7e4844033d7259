"""Regenerate ``tests/fixtures`` from the reference data in ``../shared/golden`` and our own drawings.

Usage, from the repository root with the reference data beside it:
``python scripts/make_fixtures.py [GOLDEN_DIR]`` (default ``../shared/golden``).

The tests read only ``tests/fixtures``; this script is the one place that reads the reference folder.
What it writes (see ``tests/fixtures/README.md`` for the tolerances):

- ``birefnet_swin_v1_l.keys.json.gz``: the checkpoint's key list (key -> shape, dtype), as published.
- ``fill_digests.json.gz``: SHA-256 prefixes of the golden input at both sizes (from the reference's
  ``forward.npz``) and of every filled state-dict entry, as the reference's own ``fill.py`` makes them
  (run here, once, never by the tests): the tests check ``toonmatte.model.golden_fill`` against them bit for bit.
- ``forward.npz``: the reference logits at 256x256 and 384x256 in float16, and the top-left 64x64 corner of
  each in float32.
- ``foreground.npz``: the top-left 160x224 corner of the reference blur-fusion input (image, alpha) and the
  reference output on the part of it that the rest of the image cannot reach (48 pixels in from the cut edges).
- ``images/toon.jpg``: a drawn character (``draw_toon``) on a plain backdrop, as a progressive JPEG.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SIZES = ((256, 256), (384, 256))
CORNER = 64  # side of the float32 corner kept of each logit map
CROP = (160, 224)  # rows, columns of the foreground input kept (from the top-left corner)
REACH = 48  # how far blur fusion (box 90, then box 6) reads: the output this far from a cut edge is exact
DIGEST = 16  # hex digits of SHA-256 kept per tensor


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:DIGEST]


def write_gzip_json(path: Path, data: object) -> None:
    text = json.dumps(data, indent=1).encode()
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0, filename="") as out:
        out.write(text)


def savez(path: Path, **arrays: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


def reference_fill(golden: Path):
    """The reference's fill.py, only to record digests of its tensors."""
    spec = importlib.util.spec_from_file_location("reference_fill", golden / "fill.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def keys_and_digests(golden: Path, forward: np.lib.npyio.NpzFile) -> None:
    import torch

    layout = json.loads((golden / "birefnet_swin_v1_l.keys.json").read_text())
    write_gzip_json(FIXTURES / "birefnet_swin_v1_l.keys.json.gz", layout)
    fill = reference_fill(golden)
    state = {}
    for key, entry in layout.items():
        dtype = getattr(torch, entry["dtype"])
        if dtype.is_floating_point:
            state[key] = digest(fill.fill_value(key, tuple(entry["shape"]), "toonmatte").to(dtype).numpy())
    inputs = {f"{h}x{w}": digest(forward[f"x_{h}x{w}"]) for h, w in SIZES}
    write_gzip_json(FIXTURES / "fill_digests.json.gz", {"salt": "toonmatte", "digits": DIGEST, "input": inputs,
                                                         "state_dict": state})


def logits(forward: np.lib.npyio.NpzFile) -> None:
    arrays = {}
    for h, w in SIZES:
        full = forward[f"logits_{h}x{w}"]
        arrays[f"logits_{h}x{w}"] = full.astype(np.float16)
        arrays[f"corner_{h}x{w}"] = full[..., :CORNER, :CORNER].astype(np.float32)
    savez(FIXTURES / "forward.npz", **arrays)


def foreground(golden: Path) -> None:
    reference = np.load(golden / "foreground.npz")
    rows, cols = CROP
    assert int(reference["r"]) == 90
    savez(FIXTURES / "foreground.npz", image=reference["image"][:rows, :cols], alpha=reference["alpha"][:rows, :cols],
          foreground=reference["foreground"][:rows - REACH, :cols - REACH], reach=np.int64(REACH))


def images() -> None:
    from PIL import Image

    sys.path.insert(0, str(REPO / "tests"))
    from conftest import draw_toon

    backdrop = 172
    rgb, _ = draw_toon(280, 200, background=backdrop, seed=8)
    canvas = np.full((320, 240, 3), backdrop, np.uint8)  # a full-length character, feet cut by the frame
    canvas[40:, 20:220] = rgb
    (FIXTURES / "images").mkdir(exist_ok=True)
    Image.fromarray(canvas).save(FIXTURES / "images" / "toon.jpg", "JPEG", quality=85, progressive=True,
                                 subsampling="4:2:0")


def main(golden: Path) -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    forward = np.load(golden / "forward.npz")
    keys_and_digests(golden, forward)
    logits(forward)
    foreground(golden)
    images()
    for path in sorted(FIXTURES.rglob("*")):
        if path.is_file():
            print(f"{path.stat().st_size:>8} {path.relative_to(REPO)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "golden")
