"""One training job: a shard of runs trained together, written as a Parquet history table."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from ..errors import TrainingError
from ..rng import Purpose
from .batched import METRICS, DeviceData, Runs, Schedule, TrainResult, train_many
from .checkpoint import checkpoint_key, grid_resume
from .device import device_info, pick_device
from .grid import shard_runs
from .history import device_record
from .models import CNN, Model, build_model, flatten, unflatten
from .settings import ModelSettings, TrainingSettings

log = logging.getLogger(__name__)
DTYPES = {"float32": torch.float32, "float64": torch.float64}
__all__ = ["DTYPES", "device_info", "model_for", "pick_device", "run_shard", "schedule_for"]


def model_for(slice_: dict, arrays: dict[str, np.ndarray], conv_path: str = "auto") -> Model:
    """Build the experiment's model (from a training or architecture slice) for the dataset's input
    shape and classes (`conv_path`: see `CNN`)."""
    n_classes = int(max(arrays["y_train"].max(), arrays["y_test"].max()) + 1)
    return model_of_shape(slice_, tuple(arrays["x_train"].shape[1:]), n_classes, conv_path)


def model_of_shape(slice_: dict, x_shape: tuple[int, ...], n_classes: int, conv_path: str = "auto") -> Model:
    """The experiment's model for per-example inputs of shape `x_shape` and `n_classes` classes."""
    spec = ModelSettings.from_slice(slice_)
    return build_model(
        spec.model,
        x_shape,
        n_classes,
        hidden=spec.hidden,
        dropout=spec.dropout,
        cnn_size=spec.cnn_size,
        conv_path=conv_path,
    )


def schedule_for(slice_: dict) -> Schedule:
    """The SGD schedule of a training slice."""
    return TrainingSettings.from_slice(slice_).schedule


def fixed_init_flat(model: Model, seed: int) -> np.ndarray:
    """The experiment's one fixed initialisation, flattened (P,), float64."""
    params = model.init(torch.tensor([seed]), Purpose.FIXED_INIT, torch.float64)
    return flatten(params)[0].numpy()


def history_table(experiment: str, runs: Runs, init: str, result: TrainResult, n_params: int) -> pa.Table:
    """One row per (run, logged step): identity, t, metrics, diverged flag, weights (null where not kept)."""
    m, n_steps = len(runs), len(result.steps)
    rows = m * n_steps
    kept = np.isin(result.steps, result.weight_steps)
    values = np.zeros((m, n_steps, n_params), dtype=np.float32)
    values[:, kept] = result.weights
    weights = pa.FixedSizeListArray.from_arrays(
        pa.array(values.reshape(-1)), n_params, mask=pa.array(np.tile(~kept, m))
    )
    columns = {
        "experiment": pa.array([experiment] * rows).dictionary_encode(),
        "seed": pa.array(np.repeat(runs.seeds, n_steps)),
        "replace_index": pa.array(np.repeat(runs.replace, n_steps)),
        "init": pa.array([init] * rows).dictionary_encode(),
        "t": pa.array(np.tile(result.steps, m)),
        **{k: pa.array(result.metrics[k].reshape(-1)) for k in METRICS},
        "diverged": pa.array(np.repeat(result.diverged, n_steps)),
        "weights": weights,
    }
    return pa.table(columns, metadata={"n_params": str(n_params)})


def shard_device(table: pa.Table) -> dict[str, str]:
    """The device record (`device_info`) a shard's history table carries in its metadata ({} for older shards)."""
    return device_record(table.schema.metadata)


def run_shard(
    experiment: str,
    slice_: dict,
    spec: dict,
    arrays: dict[str, np.ndarray],
    fixed_init: np.ndarray | None,
    device: str = "auto",
    budget_mb: int = 2048,
    progress: Callable[[str], None] | None = log.info,
    conv_path: str = "auto",
    checkpoint: str | Path | None = None,
    checkpoint_s: float | None = None,
) -> pa.Table:
    """Train every run of a shard and return its history table (`conv_path`: the CNN's
    convolutions, see `CNN`; it never changes which runs are computed). With a `checkpoint` path, a
    checkpoint made there under the same settings is resumed from (bit-identical result), one made
    under others is discarded, and with `checkpoint_s` the state is saved there every `checkpoint_s`
    seconds (0: at every step boundary); the caller deletes it once the table is written."""
    dev, dtype = pick_device(device), DTYPES[slice_["dtype"]]
    model = model_for(slice_, arrays, conv_path)
    path = model.path_for(dev) if isinstance(model, CNN) else ""  # refuses exact on CUDA
    conv = f", {path} convolutions" if path else ""
    seeds, replace, fixed = shard_runs(spec, len(arrays["x_train"]))
    runs = Runs(seeds, replace, fixed)
    init = None
    if spec["init"] == "fixed":
        if fixed_init is None or fixed_init.shape != (model.n_params,):
            raise TrainingError(f"fixed-init shard needs a fixed initialisation of {model.n_params} parameters")
        init = unflatten(model, torch.as_tensor(fixed_init, dtype=dtype, device=dev).reshape(1, -1))
    data = DeviceData.from_arrays(arrays, dev, dtype)
    info = device_info(dev)
    if progress:
        gpu = f", {info['gpu']}, CUDA {info['cuda']}, cuDNN {info['cudnn']}" if dev.type == "cuda" else ""
        progress(
            f"{experiment}: {len(runs)} runs of {model.n_params} parameters on {dev}{gpu} ({slice_['dtype']}{conv})"
        )
    resume, saver = None, None
    if checkpoint is not None:
        key = checkpoint_key(experiment, slice_, spec, runs, arrays, fixed_init, {"device": dev.type, "conv": path})
        resume, saver = grid_resume(checkpoint, key, checkpoint_s, progress)
    result = train_many(
        model, data, runs, schedule_for(slice_), init, budget_mb, progress=progress, resume=resume, on_step=saver
    )
    if result.diverged.any() and progress:
        progress(
            f"{int(result.diverged.sum())} of {len(runs)} runs diverged (non-finite weights or loss); kept and flagged"
        )
    table = history_table(experiment, runs, spec["init"], result, model.n_params)
    metadata = {b"training": json.dumps(slice_).encode(), b"device": json.dumps(info).encode()}
    return table.replace_schema_metadata({**table.schema.metadata, **metadata})
