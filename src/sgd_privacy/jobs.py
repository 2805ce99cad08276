"""Glue shared by the workflow scripts: logging into the job's log file, a job's torch set-up."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

from .provenance import package_versions

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
RETAIN_MB = 1024


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc on Linux (mallopt, malloc_trim), else None."""
    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(name)
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def retain_freed_memory(limit_mb: int = RETAIN_MB) -> bool:
    """Let glibc keep up to `limit_mb` of freed memory for reuse instead of returning it to the kernel
    after every tensor, with one arena for all threads; returns whether it applied (glibc only).

    A training step allocates and frees its activations (megabytes per model) every step; by default
    glibc hands them back and the next step pays a page fault per 4 KiB, contended between threads.
    The resident set stays at the job's peak instead of following its live memory."""
    libc = _glibc()
    if libc is None:
        return False
    limit = min(limit_mb, 2047) * 2**20  # mallopt takes a C int
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_THRESHOLD, 2**25), (_M_TRIM_THRESHOLD, limit))
    return all(libc.mallopt(key, value) == 1 for key, value in settings)


def release_freed_memory() -> None:
    """Hand freed memory back to the kernel now (glibc's malloc_trim), e.g. before measuring a peak."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


# cuBLAS's deterministic workspace settings (NVIDIA's cuBLAS docs, "Results reproducibility")
CUBLAS_WORKSPACES = (":4096:8", ":16:8")


def cuda_determinism() -> dict[str, object]:
    """Set what the determinism contract needs on CUDA and return the settings as now in force.

    Before CUDA is initialised: cuBLAS's fixed workspace (CUBLAS_WORKSPACE_CONFIG, else its
    reductions may differ between runs), TF32 off for matmuls and cuDNN (full float32 precision, so
    GPU results equal CPU ones to float32 rounding), cuDNN's deterministic algorithms without
    benchmarking (autotuning may pick a different algorithm per run), and torch's deterministic
    algorithms where a GPU is present (warn_only: an op with no deterministic CUDA kernel warns, naming
    itself in the job log, instead of stopping it: torch lists e.g. the CUDA nll_loss, which the CNN's
    evaluation takes per example, with no reduction to reorder). The CPU is unaffected: none of these
    change CPU kernels, and deterministic algorithms are switched on only where CUDA is available."""
    import torch  # here, so that scripts that do not use torch do not import it

    if os.environ.get("CUBLAS_WORKSPACE_CONFIG") not in CUBLAS_WORKSPACES:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACES[0]
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.set_float32_matmul_precision("highest")
    if torch.cuda.is_available():
        torch.use_deterministic_algorithms(True, warn_only=True)
    return determinism_settings()


def determinism_settings() -> dict[str, object]:
    """The settings `cuda_determinism` controls, as currently in force (for job logs and the smoke test)."""
    import torch

    return {
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG", "unset"),
        "matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "cudnn.deterministic": torch.backends.cudnn.deterministic,
        "cudnn.benchmark": torch.backends.cudnn.benchmark,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
    }


def torch_job(threads: int) -> None:
    """A compute job's torch set-up: `threads` CPU threads (the rule's), freed memory kept for reuse,
    and the CUDA settings of the determinism contract (`cuda_determinism`), logged."""
    import torch  # here, so that scripts that do not use torch do not import it

    torch.set_num_threads(threads)
    retain_freed_memory()
    settings = cuda_determinism()
    logging.getLogger(__name__).info("determinism: %s", " ".join(f"{k}={v}" for k, v in settings.items()))


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
