"""What the studio needs from the matting engine, as ``typing.Protocol`` classes.

The studio runs ``toonmatte.pipeline.Matter`` and reads the ``Matte`` objects it returns, but relies
only on the members named here. Keeping that seam explicit lets the studio's modules be imported
(and their type hints read) without importing torch, lets tests pass a stand-in engine, and makes a
missing member an error in one place rather than a silent ``getattr`` default somewhere else.
``tests/test_studio.py`` checks that ``Matter`` and ``Matte`` satisfy these protocols.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from toonmatte.imaging.imageio import LoadedImage


class Device(Protocol):
    """Where an engine runs (a ``torch.device``): the studio only asks whether it is "cuda" or "cpu"."""

    @property
    def type(self) -> str: ...


@runtime_checkable
class MatteResult(Protocol):
    """One prediction (``toonmatte.pipeline.Matte``): the RGB ``image`` the model saw (uint8 HxWx3),
    its ``alpha`` (uint8 HxW) and the name of the ``engine`` that made it."""

    @property
    def alpha(self) -> np.ndarray: ...

    @property
    def image(self) -> np.ndarray: ...

    @property
    def engine(self) -> str: ...


@runtime_checkable
class MattingEngine(Protocol):
    """A loaded engine (``toonmatte.pipeline.Matter``), as the studio uses it.

    ``engine`` is its short name ("toonout", "fallback", ...), ``title`` a human one for the banner,
    ``version`` what the dataset records as the model version of every matte it makes (a pinned
    revision or a weights file's name), ``is_fallback``/``fallback_reason`` whether the classical
    engine stands in and why, ``background`` the colour transparent images are flattened onto before
    matting, ``backend`` "torch" or "onnx".
    """

    @property
    def engine(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def is_fallback(self) -> bool: ...

    @property
    def fallback_reason(self) -> str | None: ...

    @property
    def device(self) -> Device: ...

    @property
    def backend(self) -> str: ...

    @property
    def background(self) -> tuple[int, int, int]: ...

    def predict_batch(self, images: list[LoadedImage]) -> Sequence[MatteResult]:
        """The mattes of already decoded images, in order."""
        ...
