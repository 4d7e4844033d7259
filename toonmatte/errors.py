"""Errors whose message is one clear sentence meant for the person using the tool."""
from __future__ import annotations

import errno


class ToonmatteError(Exception):
    """Base class: ``str(error)`` says what happened and what to do, in one sentence."""


class BadImageError(ToonmatteError):
    """An input could not be read as an image (empty, truncated, unsupported, too large...)."""


class WeightsError(ToonmatteError):
    """Model weights are missing, unreadable, or belong to a different model."""


class WriteError(ToonmatteError):
    """Something could not be written: the disk is full, permission is denied, the file system is
    read-only, or a file stands where a folder should be."""


_WRITE_CAUSES: dict[int, str] = {
    errno.ENOSPC: "the disk is full; free some space and try again",
    errno.EDQUOT: "the disk quota is used up; free some space and try again",
    errno.EACCES: "permission was denied; make the folder writable or choose another one",
    errno.EPERM: "permission was denied; make the folder writable or choose another one",
    errno.EROFS: "the file system is read-only; choose a folder on a writable disk",
    errno.ENOTDIR: "a file stands where a folder should be; move that file aside and try again",
    errno.EEXIST: "a file stands where a folder should be; move that file aside and try again",
    errno.EISDIR: "a folder stands where a file should be; move that folder aside and try again",
    errno.ENAMETOOLONG: "a file name is too long for the file system; use a shorter name",
}


def write_error(error: OSError, what: str) -> WriteError:
    """One sentence for an OS error raised while writing ``what`` (a description such as "The
    dataset", never a server path): the cause in words and what to do about it."""
    cause = _WRITE_CAUSES.get(error.errno or 0)
    if cause is None:
        cause = f"{(error.strerror or type(error).__name__).lower()}; check the disk and try again"
    return WriteError(f"{what} could not be written: {cause}.")


class TrainingError(ToonmatteError):
    """Fine-tuning cannot start or go on: unusable data, settings that do not fit the run, no memory left."""


class OnnxModelError(ToonmatteError):
    """An ONNX file cannot be used: unreadable, exported from another model, or for another size or opset."""
