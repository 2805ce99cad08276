"""The data layer's error type (defined with the rest of the hierarchy in sgd_privacy.errors)."""

from ..errors import DataError

__all__ = ["DataError"]
