"""Device choice on a GPU node without a usable CUDA, the device record of each shard, the exact CNN
path refused on CUDA, and the CUDA determinism settings of `torch_job`: all checked without a GPU."""

import json
import logging
import os
import warnings

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from sgd_privacy.errors import ConfigError, SgdPrivacyError, TrainingError
from sgd_privacy.io import write_table
from sgd_privacy.jobs import cuda_determinism, determinism_settings, torch_job
from sgd_privacy.train.device import assigned_gpus, device_info, pick_device
from sgd_privacy.train.models import CNN, build_model
from sgd_privacy.train.shard import run_shard, shard_device

NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the fallback cannot be simulated")
CLEAN = {"PATH": "/usr/bin"}  # an environment with no GPU variable


@NO_GPU
@pytest.mark.parametrize(
    ("name", "value"), [("CUDA_VISIBLE_DEVICES", "0"), ("SLURM_JOB_GPUS", "3"), ("SLURM_STEP_GPUS", "0,1")]
)
def test_a_job_given_a_gpu_without_cuda_stops_with_cause_and_fix(monkeypatch, name, value):
    """The simulated GPU-less job: a GPU variable set, the CPU build of torch installed."""
    for other in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS"):
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(name, value)
    with pytest.raises(TrainingError) as err:
        pick_device("auto")
    message = str(err.value)
    assert isinstance(err.value, SgdPrivacyError)
    assert f"this job was given a GPU ({name}={value}) but PyTorch cannot use it" in message
    assert "train on the CPU at CPU speed" in message
    if torch.version.cuda is None:  # this machine: the CPU wheel
        assert f"PyTorch {torch.__version__} is a CPU-only build (torch.version.cuda is None)" in message
    assert "make clean-venv && make TORCH=cuda run" in message and "training.device: cpu" in message
    assert pick_device("cpu").type == "cpu"  # choosing the CPU on purpose still works


@NO_GPU
@pytest.mark.parametrize("env", [CLEAN, {"CUDA_VISIBLE_DEVICES": ""}, {"CUDA_VISIBLE_DEVICES": "-1"}])
def test_auto_without_an_assigned_gpu_picks_the_cpu_quietly(env, caplog, recwarn):
    with caplog.at_level(logging.DEBUG):
        assert pick_device("auto", env) == torch.device("cpu")
    assert assigned_gpus(env) is None
    assert caplog.records == [] and len(recwarn) == 0


def test_assigned_gpu_variables():
    assert assigned_gpus({"CUDA_VISIBLE_DEVICES": "1,2"}) == "CUDA_VISIBLE_DEVICES=1,2"
    assert assigned_gpus({"CUDA_VISIBLE_DEVICES": "-1", "SLURM_JOB_GPUS": "0"}) == "SLURM_JOB_GPUS=0"
    assert assigned_gpus({"CUDA_VISIBLE_DEVICES": "NoDevFiles"}) is None  # Slurm's value for "no GPU"


@NO_GPU
@pytest.mark.filterwarnings("ignore:CUDA initialization")
def test_a_driver_too_old_is_named(monkeypatch):
    """A CUDA build whose CUDA cannot start: the job names torch's own reason (here, a simulated warning)."""

    def unavailable() -> bool:
        warnings.warn(
            "CUDA initialization: The NVIDIA driver on your system is too old (found version 11040)", stacklevel=2
        )
        return False

    monkeypatch.setattr(torch.version, "cuda", "12.6")
    monkeypatch.setattr(torch.cuda, "is_available", unavailable)
    with pytest.raises(
        TrainingError, match=r"built for CUDA 12\.6 but cannot use a GPU: CUDA initialization: The NVIDIA"
    ):
        pick_device("auto", {"CUDA_VISIBLE_DEVICES": "0"})
    with pytest.raises(TrainingError, match="training.device is 'cuda' but PyTorch sees no GPU: .*driver .* too old"):
        pick_device("cuda", CLEAN)


def test_unknown_device_is_refused():
    with pytest.raises(TrainingError, match="training.device is 'gpu'; expected one of auto, cpu, cuda"):
        pick_device("gpu")


def test_each_shard_records_its_device(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"{k}_{s}": None for k in "xy" for s in ("train", "val", "test")}
    for split, n in (("train", 30), ("val", 6), ("test", 6)):
        arrays[f"x_{split}"] = rng.normal(size=(n, 4)).astype(np.float32)
        arrays[f"y_{split}"] = rng.integers(0, 2, n)
    slice_ = {"dtype": "float32", "dataset": "toy", "model": "logreg", "lr": 0.1, "batch_size": 4, "epochs": 1}
    slice_ |= {"cadence": 7, "log_weights_at": None}
    spec = {"seeds": [0, 1], "replace": {"list": [3]}, "init": "variable"}
    path = tmp_path / "shard.parquet"
    write_table(run_shard("toy", slice_, spec, arrays, None, device="cpu", progress=None), path)
    table = pq.read_table(path)
    want = {"device": "cpu", "gpu": "none", "cuda": "none", "cudnn": "none", "torch": torch.__version__}
    assert shard_device(table) == want == device_info(torch.device("cpu"))
    assert json.loads(table.schema.metadata[b"training"]) == slice_


def test_exact_cnn_path_is_refused_on_cuda():
    """The selector itself, with the device 'cuda' (no GPU needed): exact is refused, fast and auto are not."""
    with pytest.raises(ConfigError, match="training.conv_path is 'exact'.*set training.conv_path to 'fast' or 'auto'"):
        CNN((1, 8, 8), 2, 3, "exact").path_for(torch.device("cuda"))
    assert CNN((1, 8, 8), 2, 3, "auto").path_for(torch.device("cuda")) == "fast"
    assert CNN((1, 8, 8), 2, 3, "fast").path_for(torch.device("cuda")) == "fast"
    exact = build_model("cnn", (1, 8, 8), 3, cnn_size=2, conv_path="exact")
    assert exact.path_for(torch.device("cpu")) == "exact"  # the CPU keeps it


@pytest.fixture
def restore_torch_flags(monkeypatch):
    """Put back every setting `cuda_determinism` changes (process-wide) after the test."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.get_float32_matmul_precision(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.get_num_threads(),
    )
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[0], saved[1]
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2], saved[3]
    torch.set_float32_matmul_precision(saved[4])
    torch.use_deterministic_algorithms(saved[5], warn_only=saved[6])
    torch.set_num_threads(saved[7])


def test_torch_job_sets_the_cuda_determinism_contract(restore_torch_flags, monkeypatch):
    """TF32 on before (as cuDNN's default), then torch_job: every flag the contract needs is set."""
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = True, True
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU node (nothing else touches CUDA)
    torch_job(1)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert torch.backends.cuda.matmul.allow_tf32 is False and torch.backends.cudnn.allow_tf32 is False
    assert torch.backends.cudnn.deterministic is True and torch.backends.cudnn.benchmark is False
    assert torch.get_float32_matmul_precision() == "highest"
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    settings = determinism_settings()
    assert settings["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8" and settings["cudnn.deterministic"] is True


def test_cuda_determinism_keeps_a_valid_workspace_and_leaves_cpu_kernels_alone(restore_torch_flags, monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    torch.use_deterministic_algorithms(False)
    settings = cuda_determinism()
    assert settings["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"  # the other deterministic setting is kept
    assert settings["deterministic_algorithms"] is False  # no GPU: CPU kernels stay as they are
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":0:0")
    assert cuda_determinism()["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"  # a non-deterministic one is replaced
