"""Errors whose message is one clear sentence meant for the person using the tool."""


class ToonmatteError(Exception):
    """Base class: ``str(error)`` says what happened and what to do, in one sentence."""


class BadImageError(ToonmatteError):
    """An input could not be read as an image (empty, truncated, unsupported, too large...)."""


class WeightsError(ToonmatteError):
    """Model weights are missing, unreadable, or belong to a different model."""
