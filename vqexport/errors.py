"""Errors that are the user's to fix. The CLI prints them on one line and exits 2."""


class VqexportError(Exception):
    """A problem with the user's input: a file, a setting, a model."""


class ConfigError(VqexportError, ValueError):
    """A compression setting that is invalid, or that does not fit a layer."""


class LoadError(VqexportError):
    """A model file that cannot be loaded, or may not be loaded without --trust-pickle."""


class VqmError(VqexportError, ValueError):
    """A .vqm file that is corrupt, truncated, or of another version."""


class DataError(VqexportError):
    """An evaluation data set that is missing, empty or does not fit the model."""


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type when it has none), for a one-line error."""
    text = str(e).strip().splitlines()
    return text[0][:limit] if text else type(e).__name__
