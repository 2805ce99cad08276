"""The data layer's error type."""


class DataError(Exception):
    """A dataset cannot be loaded: missing, corrupt or malformed input, with how to fix it."""
