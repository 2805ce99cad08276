"""Host memory (MB) a training job asks its scheduler for (Slurm `--mem`, Snakemake's `mem_mb`).

`training.memory_budget_mb` bounds the memory the trainer's chunks use on the device that trains
them. On a CPU job that device is the host, so the host request grows with the budget; on a GPU
job the budget is GPU memory, and the host holds only the data, what the job keeps for its output
and CUDA's host-side runtime, whatever the budget. A 60,000 MiB GPU budget therefore no longer
asks the node for 62 GB of host memory.
"""

from __future__ import annotations

import math

from .grid import shard_runs
from .settings import TrainingSettings

# Python, torch and the Parquet stack with nothing trained: the CPU train_shard jobs of the default
# config peak at about 0.5-0.8 GB (their benchmark files' max_rss), so 2 GB leaves room.
HOST_BASE_MB = 2048
# CUDA's host side (context, cuBLAS and cuDNN kernels resident in host memory). An allowance, not a
# measurement: no GPU has been available to this project; read max_rss in logs/benchmarks after a
# first GPU run and lower it there if your queue favours small requests.
GPU_RUNTIME_MB = 4096
# a shard's weights are held three times at the end of a job: the trainer's array (training dtype),
# the history table's float32 array of every logged step, and Arrow's float32 copy of it
ITEMSIZE = {"float32": 4, "float64": 8}


def training_host_mb(budget_mb: float, gpu: bool, data_mb: float, held_mb: float) -> int:
    """Host MB of a training job: base + (CUDA's runtime on a GPU job, the budget on a CPU job)
    + the data read twice (file and tensors) + `held_mb` (what the job keeps for its output)."""
    if budget_mb <= 0 or data_mb < 0 or held_mb < 0:
        raise ValueError(f"memory sizes must be positive: budget {budget_mb}, data {data_mb}, held {held_mb} MB")
    on_host = GPU_RUNTIME_MB if gpu else budget_mb
    return math.ceil(HOST_BASE_MB + on_host + 2 * data_mb + held_mb)


def shard_held_mb(slice_: dict, spec: dict, meta: dict) -> float:
    """Host MB a train_shard job holds for its history table, at most: runs x logged steps x
    parameters, in three copies (above), from the dataset's metadata (`results/data/<name>.json`)."""
    from .shard import model_of_shape  # torch: imported on use, not whenever the workflow's process starts

    shapes = meta["shapes"]
    n_train = shapes["x_train"][0]
    n_params = model_of_shape(slice_, tuple(shapes["x_train"][1:]), int(meta["n_classes"])).n_params
    seeds, _, _ = shard_runs(spec, n_train)
    logged = len(TrainingSettings.from_slice(slice_).schedule.log_steps(n_train - 1))
    return len(seeds) * logged * n_params * (ITEMSIZE[slice_["dtype"]] + 2 * 4) / 2**20
