"""The models toonmatte knows how to fetch: where each checkpoint lives on the Hugging Face Hub and how to run it.

All entries share one architecture (BiRefNet with a Swin-L backbone); they differ in
training data, working resolution and the dtype the file was saved in.
This module stays free of torch so that listing models is cheap.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

from toonmatte.errors import ToonmatteError

DYNAMIC_MULTIPLE = 32  # BiRefNet needs H and W divisible by 32 (five stride-2 stages)


@dataclass(frozen=True)
class ModelSpec:
    """One downloadable checkpoint.

    ``revision`` is a pinned Hub commit where one is known; ``None`` means the branch "main".
    ``resolution`` is the square input size the model was trained at, or ``None`` for a
    dynamic model that runs at the image's own size rounded to multiples of 32.
    ``dtype`` is how the tensors are stored in the file (they are cast to float32 on load).
    """

    name: str
    title: str
    repo_id: str
    filename: str
    revision: str | None
    resolution: int | None
    dtype: str
    licence: str
    description: str

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
            revision=None,
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
            revision=None,
            resolution=1024,
            dtype="float32",
            licence="MIT",
            description="General-purpose BiRefNet, the model ToonOut was fine-tuned from.",
        ),
        ModelSpec(
            name="birefnet-hr",
            title="BiRefNet_HR",
            repo_id="ZhengPeng7/BiRefNet_HR",
            filename="model.safetensors",
            revision=None,
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
            revision=None,
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
            revision=None,
            resolution=None,
            dtype="float16",
            licence="MIT",
            description="General BiRefNet trained at sizes from 256 to 2304 that runs at the image's own size.",
        ),
    )
}

DEFAULT_MODEL = "toonout"


def get_spec(name: str) -> ModelSpec:
    """Look a model up by name (case and ``_``/``-`` do not matter); unknown names raise ToonmatteError."""
    key = name.strip().lower().replace("_", "-")
    if key in ZOO:
        return ZOO[key]
    close = difflib.get_close_matches(key, list(ZOO), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ToonmatteError(f"Unknown model {name!r}{hint}; choose one of: {', '.join(ZOO)}.")
