"""Glue shared by the workflow scripts: logging into the job's log file."""

from __future__ import annotations

import logging
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

from .provenance import package_versions


def attempt_header() -> str:
    """The line that opens one attempt's block in a job log: start time, host and Slurm job id (if any)."""
    slurm = os.environ.get("SLURM_JOB_ID")
    where = socket.gethostname() + (f", slurm job {slurm}" if slurm else "")
    return f"===== attempt started {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} on {where} ====="


def attempts_file(log_file: str) -> str:
    """Where every attempt of a job is kept: `<log file>.attempts`, beside the job's log.

    Snakemake deletes a job's declared log before each attempt, so the declared log shows the
    latest attempt and this undeclared file, which Snakemake leaves alone, keeps them all."""
    return f"{log_file}.attempts"


def job_logging(log_file: str | None) -> logging.Logger:
    """Send INFO logs of the library to the job's log file, to its attempts file and to stderr, starting
    with the exact package versions; return the script's logger. Both files get `attempt_header()` first;
    the attempts file is appended to, so it keeps the errors of earlier attempts of a retried job."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        for path in (log_file, attempts_file(log_file)):
            with open(path, "a") as fh:
                fh.write(attempt_header() + "\n")
            handlers.append(logging.FileHandler(path, mode="a"))
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
