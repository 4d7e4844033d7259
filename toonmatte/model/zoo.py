"""The models toonmatte knows how to fetch: where each checkpoint lives on the Hugging Face Hub and how to run it.

All entries share one architecture (BiRefNet with a Swin-L backbone); they differ in
training data, working resolution and the dtype the file was saved in. A local checkpoint
(a fine-tune's ``best.safetensors``, its run folder, or any BiRefNet file) is a model too, named
by its path: see :func:`checkpoint_spec`.
This module stays free of torch so that listing models is cheap.
"""
from __future__ import annotations

import difflib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from toonmatte.errors import ToonmatteError

log = logging.getLogger(__name__)

DYNAMIC_MULTIPLE = 32  # BiRefNet needs H and W divisible by 32 (five stride-2 stages)
FINETUNE_WEIGHTS = "best.safetensors"  # what ``python -m toonmatte finetune`` writes into its run folder
CARD = "card.json"  # written beside it: how the weights were made
CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".ckpt")


@dataclass(frozen=True)
class ModelSpec:
    """One downloadable checkpoint.

    ``revision`` pins the Hub commit (a full commit sha) the file is downloaded at, and ``sha256`` is
    the file's SHA-256, checked after download (``toonmatte.model.weights``), as rembg pins its
    models: a repository that changes, or a damaged download, then fails loudly instead of running
    other weights. Every entry states both; ``None`` for both means not pinned (the branch "main" is
    used and the file is not checked), which the zoo's entries never are. To move an entry to a newer
    upload, take both values from the file's page on the Hub (its commit and its LFS SHA-256).
    For a local checkpoint ``revision`` is a label (see :func:`checkpoint_spec`) and ``sha256`` None.
    ``resolution`` is the square input size the model was trained at, or ``None`` for a
    dynamic model that runs at the image's own size rounded to multiples of 32.
    ``dtype`` is how the tensors are stored in the file (they are cast to float32 on load).
    ``path`` is set for a local checkpoint, which is read from there instead of the Hub.
    """

    name: str
    title: str
    repo_id: str
    filename: str
    revision: str | None
    sha256: str | None
    resolution: int | None
    dtype: str
    licence: str
    description: str
    path: str | None = None

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) an image of this size is resized to before it enters the model."""
        if self.resolution is not None:
            return self.resolution, self.resolution
        return _round_to_multiple(height), _round_to_multiple(width)


def _round_to_multiple(size: int, multiple: int = DYNAMIC_MULTIPLE) -> int:
    return max(multiple, int(round(size / multiple)) * multiple)


ZOO: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="toonout",
            title="ToonOut",
            repo_id="joelseytre/toonout",
            filename="birefnet_finetuned_toonout.pth",
            revision="cbf720eca394edcde66b861a8a8c20fbabe9c748",
            sha256="8c7f8a0bc24400f4caade76622f75ff22ca1e93e169add9d2b70093e2487fbe5",
            resolution=1024,
            dtype="float32",
            licence="MIT",
            description="BiRefNet fine-tuned on 1,228 anime images; the default for anime characters.",
        ),
        ModelSpec(
            name="birefnet",
            title="BiRefNet",
            repo_id="ZhengPeng7/BiRefNet",
            filename="model.safetensors",
            revision="e2bf8e4460fc8fa32bba5ea4d94b3233d367b0e4",
            sha256="9ab37426bf4de0567af6b5d21b16151357149139362e6e8992021b8ce356a154",
            resolution=1024,
            dtype="float16",  # the pinned upload is half precision (444 MB)
            licence="MIT",
            description="General-purpose BiRefNet, the model ToonOut was fine-tuned from.",
        ),
        ModelSpec(
            name="birefnet-hr",
            title="BiRefNet_HR",
            repo_id="ZhengPeng7/BiRefNet_HR",
            filename="model.safetensors",
            revision="a7a562f6fd16021180f2f4348f4de003a2d3d1e1",
            sha256="9d678bafec0b0019fbb073b7fd02f05ede25dc4b15254f23b2fb0be333200c0d",
            resolution=2048,
            dtype="float16",
            licence="MIT",
            description="General BiRefNet trained at 2048x2048 for large images.",
        ),
        ModelSpec(
            name="birefnet-hr-matting",
            title="BiRefNet_HR-matting",
            repo_id="ZhengPeng7/BiRefNet_HR-matting",
            filename="model.safetensors",
            revision="5d6b6f8adcb5b417c871b1d84ceaae9871355b7f",
            sha256="a5a4de698739ea5e0e8bbab28e1b293dde95092b87a442d566cbc585c53cef55",
            resolution=2048,
            dtype="float16",
            licence="MIT",
            description="BiRefNet trained at 2048x2048 on matting data for soft edges such as hair.",
        ),
        ModelSpec(
            name="birefnet-dynamic",
            title="BiRefNet_dynamic",
            repo_id="ZhengPeng7/BiRefNet_dynamic",
            filename="model.safetensors",
            revision="280306042f57b7a33854319da62fd86aaa89ec4c",
            sha256="e3d2e4884e51ff30f0cd630edc6b1e41b06b7f23a0a2a5169f7b7cb33a711c2d",
            resolution=None,
            dtype="float16",
            licence="MIT",
            description="General BiRefNet trained at sizes from 256 to 2304 that runs at the image's own size.",
        ),
    )
}

DEFAULT_MODEL = "toonout"


def get_spec(name: str) -> ModelSpec:
    """Look a model up by name (case and ``_``/``-`` do not matter), or take a path to a local checkpoint
    (see :func:`checkpoint_spec`); unknown names raise ToonmatteError."""
    key = name.strip().lower().replace("_", "-")
    if key in ZOO:
        return ZOO[key]
    if is_checkpoint_path(name):
        return checkpoint_spec(name)
    close = difflib.get_close_matches(key, list(ZOO), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ToonmatteError(f"Unknown model {name!r}{hint}; choose one of: {', '.join(ZOO)}.")


def spec_for(model: str, weights: str | os.PathLike[str] | None = None) -> ModelSpec:
    """The spec of what will run: ``weights`` themselves when they are a fine-tune with its card
    beside them (so its training size is used and its name and version are recorded), else ``model``."""
    if weights is not None and finetune_card(weights) is not None:
        return checkpoint_spec(weights)
    return get_spec(model)


def is_checkpoint_path(name: str) -> bool:
    """True for a name that is a path: one with a folder in it, a checkpoint suffix, or an existing file or folder."""
    return ("/" in name or os.sep in name or name.lower().endswith(CHECKPOINT_SUFFIXES)
            or Path(name).expanduser().exists())


def checkpoint_weights(path: str | os.PathLike[str]) -> Path:
    """The checkpoint file a path names: the path itself, or a run folder's ``best.safetensors``."""
    path = Path(path).expanduser()
    return path / FINETUNE_WEIGHTS if path.is_dir() else path


def finetune_card(path: str | os.PathLike[str]) -> dict | None:
    """The card that ``finetune`` wrote about these weights (``card.json`` beside them, naming this file), or None."""
    weights = checkpoint_weights(path)
    card_path = weights.parent / CARD
    if not card_path.is_file():
        return None
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        log.warning("Ignoring the unreadable model card %s (%s).", card_path, error)
        return None
    return card if isinstance(card, dict) and card.get("weights") == weights.name else None


def checkpoint_spec(path: str | os.PathLike[str]) -> ModelSpec:
    """A local checkpoint as a model, named ``<folder>/<file>`` (for a fine-tune: ``<run>/best.safetensors``).

    With a fine-tune's card, the model runs at the size it was trained at and its ``revision`` is the
    start of the weights' SHA-256, so the studio's records tell one fine-tune from the next; without
    one, it runs at 1024 like ToonOut.
    """
    weights = checkpoint_weights(path)
    card = finetune_card(weights) or {}
    folder = weights.resolve().parent.name or str(weights.parent)
    init = card.get("init") or {}
    best = card.get("best") or {}
    sha = card.get("weights_sha256") or ""
    if card:
        title = f"fine-tune {folder}"
        train = ((card.get("data") or {}).get("counts") or {}).get("train", "?")
        score = f"; val PA {best['val_pa']:.4f}" if isinstance(best.get("val_pa"), (int, float)) else ""
        description = (f"Fine-tuned from {init.get('name', 'unknown weights')} on {train} training images for "
                       f"{card.get('epochs_completed', '?')} epoch(s){score}.")
    else:
        title, description = weights.name, f"A BiRefNet checkpoint from {weights.parent}."
    return ModelSpec(
        name=f"{folder}/{weights.name}",
        title=title,
        repo_id=str(weights.parent),
        filename=weights.name,
        revision=sha[:12] or None,
        sha256=None,
        resolution=int((card.get("training") or {}).get("size", 1024)),
        dtype="float32",
        licence=init.get("licence") or "unknown",
        description=description,
        path=str(weights),
    )
