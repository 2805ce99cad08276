"""The package's error hierarchy: every expected failure is an SgdPrivacyError naming what is wrong and the fix."""

from __future__ import annotations


class SgdPrivacyError(Exception):
    """Base class of the pipeline's own errors (bad config, bad data, impossible settings)."""


class ConfigError(SgdPrivacyError, ValueError):
    """The configuration is invalid; the message names the key, the value and what is allowed."""


class DataError(SgdPrivacyError):
    """A dataset cannot be loaded: missing, corrupt or malformed input, with how to fix it."""


class TrainingError(SgdPrivacyError, ValueError):
    """Training cannot run as configured (e.g. a batch larger than the data, every run diverged)."""
