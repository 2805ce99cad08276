"""Glue shared by the workflow scripts: logging into the job's log file."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from .provenance import package_versions


def job_logging(log_file: str | None) -> logging.Logger:
    """Send INFO logs of the library to the job's log file (and stderr), starting with the exact package
    versions; return the script's logger."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", handlers=handlers, force=True)
    logger = logging.getLogger("sgd_privacy.job")

    def log_uncaught(kind, value, tb) -> None:  # noqa: ANN001 - sys.excepthook signature
        logger.error("%s: %s", kind.__name__, value, exc_info=(kind, value, tb))

    sys.excepthook = log_uncaught
    logger.info("versions: %s", " ".join(f"{k}={v}" for k, v in package_versions().items()))
    return logger


def prepend_pythonpath(path: str) -> None:
    """Put `path` first on PYTHONPATH so job subprocesses (conda envs included) import this library."""
    key = "PYTHONPATH"
    current = os.environ.get(key)
    os.environ[key] = os.pathsep.join(p for p in (path, current) if p)
