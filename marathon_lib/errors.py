"""Errors with messages that name the offending file, sample or option."""


class MarathonError(Exception):
    """Base class of the suite's own errors."""


class ConfigError(MarathonError):
    """A bad option value or an unknown registry name; raised before any model loads."""


class DataError(MarathonError):
    """A manifest, sample or audio file that cannot be used as it is."""
