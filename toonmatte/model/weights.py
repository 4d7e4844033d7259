"""Finding, reading and loading BiRefNet/ToonOut checkpoints.

Three steps, each usable on its own:

- ``resolve_weights`` finds the file: an explicit path, then ``$TOONMATTE_WEIGHTS``, then the
  Hugging Face Hub (through its cache, so it works offline once downloaded), at the zoo entry's
  pinned revision, and checked against its pinned SHA-256.
- ``read_state_dict`` reads it safely (pickles with ``weights_only=True``), strips the
  ``module.``/``_orig_mod.`` prefixes that DDP and ``torch.compile`` leave behind, and casts
  half-precision files to float32. The first time a pickled checkpoint is read, a prefix-stripped
  ``.safetensors`` copy is written to a conversion cache and used afterwards (no unpickling, faster).
- ``load_weights`` puts the tensors into a model, strictly, with a short summary when they do not fit.
"""
from __future__ import annotations

import hashlib
import logging
import os
import pickle
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from toonmatte.errors import WeightsError
from toonmatte.model.zoo import DEFAULT_MODEL, ModelSpec, get_spec

if TYPE_CHECKING:
    from toonmatte.model.birefnet import BiRefNetConfig

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]

WEIGHTS_ENV = "TOONMATTE_WEIGHTS"
CACHE_ENV = "TOONMATTE_CACHE"
PREFIXES = ("module.", "_orig_mod.")  # DDP wraps outside torch.compile, so strip in this order
NESTED_KEYS = ("state_dict", "model", "model_state_dict")
MAX_EXAMPLES = 5
_TRUE = {"1", "on", "yes", "true"}
_VERIFIED: dict[tuple[str, int, int], str] = {}  # (resolved path, size, mtime) -> SHA-256 of a checked Hub file


# --------------------------------------------------------------------------- finding the file


def resolve_weights(model: str | ModelSpec = DEFAULT_MODEL, weights: str | os.PathLike[str] | None = None) -> Path:
    """Return the path of the checkpoint for ``model`` (a name, a local checkpoint's path, or a spec).

    Order: ``weights`` if given, then a local checkpoint's own path, then ``$TOONMATTE_WEIGHTS``, then
    the Hub file of the zoo entry (downloaded into, or found in, the Hugging Face cache;
    ``HF_HUB_OFFLINE=1`` never touches the network). ``weights`` may also be a folder holding the zoo
    entry's file name.
    """
    spec = model if isinstance(model, ModelSpec) else get_spec(model)
    local = local_weights(spec, weights)
    return local if local is not None else _from_hub(spec)


def local_weights(spec: ModelSpec, weights: str | os.PathLike[str] | None = None) -> Path | None:
    """The local file that stands in for ``spec``'s Hub file (the first three places :func:`resolve_weights`
    looks), or None when the Hub file is the one used; only a Hub file is the pinned revision."""
    if weights is not None:
        return _existing_file(Path(weights), spec, "")
    if spec.path is not None:
        return _existing_file(Path(spec.path), spec, "")
    from_env = os.environ.get(WEIGHTS_ENV, "").strip()
    if from_env:
        return _existing_file(Path(from_env), spec, f" (from {WEIGHTS_ENV})")
    return None


def _existing_file(path: Path, spec: ModelSpec, origin: str) -> Path:
    path = path.expanduser()
    if path.is_dir() and (path / spec.filename).is_file():
        return path / spec.filename
    if path.is_file():
        return path
    if path.is_dir():
        raise WeightsError(
            f"The weights folder {path}{origin} has no {spec.filename}; pass the checkpoint file itself."
        )
    raise WeightsError(f"The weights file {path}{origin} does not exist; check the path.")


def _from_hub(spec: ModelSpec) -> Path:
    """Fetch through huggingface_hub, reading its environment variables now rather than at its import."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE or constants.HF_HUB_OFFLINE
    manual = f"download {spec.filename} from {spec.repo_id} and pass --weights PATH or set {WEIGHTS_ENV}"
    try:
        path = hf_hub_download(
            spec.repo_id,
            spec.filename,
            revision=spec.revision,
            cache_dir=_hub_cache_dir(),
            local_files_only=offline,
        )
    except LocalEntryNotFoundError:
        reason = "offline mode (HF_HUB_OFFLINE) is on" if offline else "the Hub cannot be reached"
        raise WeightsError(f"{spec.title} weights are not in the Hugging Face cache and {reason}; {manual}.") from None
    except Exception as error:  # gated/missing repo, HTTP errors, full disk...: all end the same way for the user
        raise WeightsError(
            f"Could not get {spec.title} weights from the Hugging Face Hub ({_brief(error)}); {manual}."
        ) from None
    return _checked(Path(path), spec)


def _checked(path: Path, spec: ModelSpec) -> Path:
    """``path`` once its SHA-256 is the one ``spec`` pins (no check when it pins none); a WeightsError otherwise.

    A file is hashed once per process while its size and modification time stay the same.
    """
    if spec.sha256 is None:
        return path
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    actual = _VERIFIED.get(key) or file_sha256(path)
    if actual != spec.sha256.lower():
        raise WeightsError(
            f"The {spec.title} file {path} has SHA-256 {actual}, not the {spec.sha256} pinned for {spec.repo_id} at "
            f"revision {spec.revision}; delete it from the Hugging Face cache and run again to download it anew, "
            f"or pass --weights PATH if you meant to use other weights."
        )
    _VERIFIED[key] = actual
    return path


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The hex SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hub_cache_dir() -> str | None:
    """The hub cache the environment asks for now; None lets huggingface_hub use its own default."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(name):
            return os.path.expanduser(os.environ[name])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    return None


def _brief(error: BaseException) -> str:
    first_line = (str(error).strip().splitlines() or [""])[0]
    text = f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


# --------------------------------------------------------------------------- reading the file


def read_checkpoint(path: Path, advice: str) -> tuple[StateDict, BiRefNetConfig]:
    """A BiRefNet checkpoint's state dict and the architecture it describes; a WeightsError ending with
    ``advice`` (what to pass instead) when the file is not a BiRefNet checkpoint."""
    from toonmatte.model.birefnet import config_from_state_dict

    state = read_state_dict(path)
    try:
        return state, config_from_state_dict(state)
    except (KeyError, IndexError) as error:
        raise WeightsError(f"{path} is not a BiRefNet checkpoint (it has no {error} entry); {advice}.") from None


def read_state_dict(path: str | os.PathLike[str], *, use_cache: bool = True) -> StateDict:
    """Read a checkpoint into a flat, prefix-stripped, float32 state dict on the CPU.

    ``.safetensors`` files are read directly; anything else is unpickled with ``weights_only=True``
    (a state dict may sit under "state_dict", "model" or "model_state_dict"). With ``use_cache``,
    a pickle is converted once to ``.safetensors`` in the conversion cache and read from there later.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        problem = "is not a file" if path.exists() else "does not exist"
        raise WeightsError(f"The weights file {path} {problem}; check the path.")
    if path.stat().st_size == 0:
        raise WeightsError(f"The weights file {path} is empty (0 bytes); download it again.")
    if _is_safetensors(path):
        return _to_float32(_read_safetensors(path))
    cached = _converted_path(path) if use_cache else None
    if cached is not None and cached.is_file():
        try:
            return _to_float32(_read_safetensors(cached))
        except WeightsError:
            log.warning("Ignoring the damaged converted copy %s and reading %s again.", cached, path)
    state = strip_prefixes(_read_pickle(path))
    if cached is not None:
        _write_converted(state, cached, source=path)
    return _to_float32(state)


def _is_safetensors(path: Path) -> bool:
    """Sniff the format: safetensors starts with a little-endian u64 header length and then '{'."""
    with path.open("rb") as file:
        head = file.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < path.stat().st_size


def _read_safetensors(path: Path) -> StateDict:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception:
        raise WeightsError(f"The weights file {path} is damaged or incomplete; download it again.") from None


def _read_pickle(path: Path) -> StateDict:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch names the class or function it refused; other unpickling errors mean a garbled file.
        if "unsupported global" in str(error).lower():
            raise WeightsError(
                f"The weights file {path} holds Python objects besides tensors, so it was not unpickled for safety; "
                "use a plain state-dict checkpoint or a .safetensors file."
            ) from None
        raise WeightsError(f"The weights file {path} is damaged or incomplete; download it again.") from None
    except Exception:
        raise WeightsError(f"The weights file {path} is damaged or incomplete; download it again.") from None
    return _find_state_dict(loaded, path)


def _find_state_dict(loaded: object, path: Path) -> StateDict:
    """Unwrap training checkpoints ({"state_dict": ..., "epoch": ...}) down to the tensors."""
    while isinstance(loaded, Mapping):
        nested = next((loaded[key] for key in NESTED_KEYS if isinstance(loaded.get(key), Mapping)), None)
        if nested is None:
            break
        loaded = nested
    if isinstance(loaded, Mapping):
        tensors = {str(key): value for key, value in loaded.items() if isinstance(value, torch.Tensor)}
        if tensors:
            return tensors
    raise WeightsError(
        f"The file {path} is not a model checkpoint (it holds no tensors); check that it is the right file."
    )


def strip_prefixes(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Drop a leading ``module.`` and then ``_orig_mod.`` (either, both or neither) from every key."""
    stripped: StateDict = {}
    for key, tensor in state.items():
        for prefix in PREFIXES:
            key = key.removeprefix(prefix)
        stripped[key] = tensor
    return stripped


def _to_float32(state: StateDict) -> StateDict:
    return {key: t.float() if t.is_floating_point() else t for key, t in state.items()}


# --------------------------------------------------------------------------- the conversion cache


def cache_dir() -> Path:
    """Where converted checkpoints live: ``$TOONMATTE_CACHE`` or ``~/.cache/toonmatte``, then ``converted/``."""
    root = os.environ.get(CACHE_ENV) or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "toonmatte")
    return Path(root).expanduser() / "converted"


def _converted_path(source: Path) -> Path:
    """A name tied to the source's name, size and modification time, so a replaced file is converted again."""
    stat = source.stat()
    key = hashlib.sha256(f"{source.name}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / f"{source.stem}-{key}.safetensors"


def _write_converted(state: StateDict, target: Path, source: Path) -> None:
    """Save atomically (temporary file + rename); a cache that cannot be written is only logged."""
    from safetensors.torch import save_file

    temporary: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".tmp")
        os.close(handle)
        save_file({k: t.contiguous() for k, t in state.items()}, temporary, metadata={"source": str(source)})
        with open(temporary, "rb") as file:
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a cache file is as readable as its source
        os.replace(temporary, target)
        temporary = None
    except Exception as error:
        log.warning("Could not write the converted checkpoint %s (%s); continuing without it.", target, _brief(error))
    finally:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


# --------------------------------------------------------------------------- loading into a model


def load_weights(model: nn.Module, source: str | os.PathLike[str] | Mapping[str, torch.Tensor]) -> nn.Module:
    """Load a checkpoint path or a state dict into ``model`` strictly and return the model.

    Keys are prefix-stripped and floats cast to float32 first; when the tensors do not fit the
    model, a WeightsError gives counts and a few examples instead of the full key list.
    """
    if isinstance(source, Mapping):
        state = _to_float32(strip_prefixes(source))
        where = "These weights"
    else:
        state = read_state_dict(source)
        where = f"The weights in {Path(source).name}"
    mismatch = describe_mismatch(model.state_dict(), state)
    if mismatch:
        raise WeightsError(
            f"{where} do not fit this model ({mismatch}); they look like a different model, "
            "so check --model and --weights."
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise WeightsError(
            f"{where} could not be loaded into this model ({_brief(error)}); check --model and --weights."
        ) from None
    return model


def describe_mismatch(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]) -> str:
    """A short summary of missing, unexpected and wrongly shaped keys; "" when the state dicts fit.

    A missing BatchNorm ``num_batches_tracked`` is not counted: torch fills it in and inference never reads it.
    """
    missing = [k for k in expected if k not in given and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in given if k not in expected]
    shapes = [
        f"{k} {_shape(given[k])} vs {_shape(expected[k])}"
        for k in expected
        if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    groups = ((missing, "missing"), (unexpected, "unexpected"), (shapes, "with the wrong shape (file vs model)"))
    parts = [_summarise(items, label) for items, label in groups if items]
    return "; ".join(parts)


def _summarise(items: list[str], label: str) -> str:
    shown = ", ".join(items[:MAX_EXAMPLES])
    more = f", and {len(items) - MAX_EXAMPLES} more" if len(items) > MAX_EXAMPLES else ""
    noun = "key" if len(items) == 1 else "keys"
    return f"{len(items)} {noun} {label}: {shown}{more}"


def _shape(tensor: torch.Tensor) -> str:
    return "x".join(str(d) for d in tensor.shape) or "scalar"
