"""Errors the CLI reports as one clear line (path + fix) instead of a traceback."""


class AsledError(Exception):
    """A user-facing problem: bad input, missing file, bad config. The message names the path and the fix."""


class DataError(AsledError):
    """Input data is missing, malformed or inconsistent."""


class ConfigError(AsledError):
    """params.yaml (or a value derived from it) is invalid."""
