"""toonmatte: anime background removal with ToonOut (a BiRefNet fine-tune), on GPU or CPU.

The public API is re-exported here lazily so that ``import toonmatte`` stays cheap
(torch is imported only when a model-related name is first used).
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BiRefNetConfig": "toonmatte.model.birefnet",
    "build_model": "toonmatte.model.birefnet",
    "load_weights": "toonmatte.model.weights",
    "resolve_weights": "toonmatte.model.weights",
    "ZOO": "toonmatte.model.zoo",
    "estimate_foreground": "toonmatte.imaging.foreground",
    "cutout": "toonmatte.imaging.foreground",
    "fallback_alpha": "toonmatte.imaging.fallback",
    "load_image": "toonmatte.imaging.imageio",
    "Matter": "toonmatte.pipeline",
    "Matte": "toonmatte.pipeline",
    "ToonmatteError": "toonmatte.errors",
    "BadImageError": "toonmatte.errors",
    "WeightsError": "toonmatte.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'toonmatte' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
