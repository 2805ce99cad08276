"""Which device a job trains on, why CUDA is missing when a GPU was assigned, and what the device was.

A job that Slurm (or the user) gave a GPU must train on it: `device: auto` falling back to the CPU
there would hold the GPU while training at CPU speed until the time limit. `pick_device` stops such
a job with the cause (a CPU-only PyTorch build, a driver older than the build, no device visible)
and the fix; `device_info` is what each shard records about the device that trained it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping

import torch

from ..errors import TrainingError

# Environment variables through which a scheduler or the user hands a job its GPUs.
GPU_VARIABLES = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS")
DEVICES = ("auto", "cpu", "cuda")
FIX = (
    "install PyTorch's CUDA build in the job's environment (`make clean-venv && make TORCH=cuda run`, "
    "see README 'Installing for a GPU') or set training.device: cpu to train on the CPU on purpose"
)


def assigned_gpus(environ: Mapping[str, str] | None = None) -> str | None:
    """The variable (with its value) showing that this job was given a GPU, or None.

    CUDA_VISIBLE_DEVICES counts when non-empty and not "-1" (both hide every GPU); SLURM_JOB_GPUS and
    SLURM_STEP_GPUS when set and non-empty."""
    env = os.environ if environ is None else environ
    for name in GPU_VARIABLES:
        value = env.get(name, "").strip()
        if value and value not in ("-1", "NoDevFiles"):
            return f"{name}={value}"
    return None


def cuda_unavailable_cause() -> str:
    """Why PyTorch sees no usable GPU, in words: a CPU-only build, or CUDA's own reason (e.g. a driver
    too old for the build's CUDA version)."""
    if torch.version.cuda is None:
        return f"the installed PyTorch {torch.__version__} is a CPU-only build (torch.version.cuda is None)"
    with warnings.catch_warnings(record=True) as caught:  # torch warns with CUDA's reason when init fails
        warnings.simplefilter("always")
        torch.cuda.is_available()
    reasons = "; ".join(str(w.message).strip() for w in caught)
    detail = f": {reasons}" if reasons else " (is the NVIDIA driver older than this CUDA version, or no GPU visible?)"
    return f"PyTorch {torch.__version__} is built for CUDA {torch.version.cuda} but cannot use a GPU{detail}"


def pick_device(requested: str, environ: Mapping[str, str] | None = None) -> torch.device:
    """The training device: 'auto' is CUDA when available, else the CPU, except that a job given a GPU
    (`assigned_gpus`) without a usable CUDA stops with the cause and the fix; 'cuda' without a GPU stops too."""
    if requested not in DEVICES:
        raise TrainingError(f"training.device is {requested!r}; expected one of {', '.join(DEVICES)}")
    if requested == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if requested == "cuda":
        raise TrainingError(
            f"training.device is 'cuda' but PyTorch sees no GPU: {cuda_unavailable_cause()}; "
            f"use 'auto' or 'cpu', or {FIX}"
        )
    given = assigned_gpus(environ)
    if given:
        raise TrainingError(
            f"this job was given a GPU ({given}) but PyTorch cannot use it, so training.device: auto would "
            f"train on the CPU at CPU speed while holding the GPU: {cuda_unavailable_cause()}. Fix: {FIX}"
        )
    return torch.device("cpu")


def device_info(device: torch.device) -> dict[str, str]:
    """What trained a shard: the device, the GPU's name, and the CUDA and cuDNN versions ('none' on the CPU)."""
    cudnn = torch.backends.cudnn.version() if device.type == "cuda" else None
    return {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else "none",
        "cuda": (torch.version.cuda or "none") if device.type == "cuda" else "none",
        "cudnn": str(cudnn) if cudnn else "none",
        "torch": torch.__version__,
    }
