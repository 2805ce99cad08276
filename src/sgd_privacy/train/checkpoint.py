"""Checkpoints of a training job: a killed or requeued shard resumes where it stopped, bit-identically.

A checkpoint is one `.npz` file beside the shard's output, written atomically (temporary file and
`os.replace`) at a step boundary: the parameters of the chunk of models in progress, the step, the
history logged so far (finished chunks included) and the chunking. The trainer's randomness is a
counter-based hash of (seed, purpose, epoch or step), so the step is its whole random state. The
file carries a key (`checkpoint_key`) over everything that decides the result; a checkpoint whose
key differs (another config slice, other data, another code version of the step) is discarded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_path
from .batched import METRICS, BatchState, Runs, TrainResult, TrainState

log = logging.getLogger(__name__)

# Bump whenever a step, the logging or the checkpoint layout changes what a resumed run computes.
CHECKPOINT_VERSION = 1


def checkpoint_path(output: str | Path) -> Path:
    """Where the checkpoint of the job writing `output` lives: beside it, `{output}.ckpt`."""
    return Path(f"{output}.ckpt")


def _digest(*arrays: np.ndarray) -> str:
    """sha256 over arrays' dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def checkpoint_key(
    experiment: str,
    slice_: dict,
    spec: dict,
    runs: Runs,
    arrays: dict[str, np.ndarray],
    fixed_init: np.ndarray | None,
    computation: dict[str, str],
) -> str:
    """sha256 of everything that decides a shard's result: the code version of the step
    (`CHECKPOINT_VERSION`, torch's version), the experiment, its training slice, the shard's spec and
    runs, the data and fixed initialisation, and `computation` (device type, CNN convolution path)."""
    record = {
        "version": CHECKPOINT_VERSION,
        "torch": torch.__version__,
        "experiment": experiment,
        "training": slice_,
        "shard": spec,
        "runs": _digest(runs.seeds, runs.replace, runs.fixed),
        "data": _digest(*(arrays[k] for k in sorted(arrays))),
        "fixed_init": None if fixed_init is None else _digest(fixed_init),
        "computation": computation,
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def save_checkpoint(path: str | Path, key: str, state: TrainState) -> None:
    """Write `state` under `key` to `path` atomically (a kill leaves the previous checkpoint whole)."""
    batch, done = state.batch, state.done
    meta = {"key": key, "chunk": state.chunk, "start": state.start, "rows_per_chunk": state.rows_per_chunk}
    meta |= {"t": batch.t, "n_params": len(batch.params), "done": done is not None}
    arrays = {f"param_{i}": p for i, p in enumerate(batch.params)}
    arrays |= {f"metric_{k}": batch.metrics[k] for k in METRICS}
    arrays |= {"weights": batch.weights, "diverged": batch.diverged}
    if done is not None:
        arrays |= {"done_steps": done.steps, "done_weight_steps": done.weight_steps, "done_weights": done.weights}
        arrays |= {f"done_metric_{k}": done.metrics[k] for k in METRICS}
        arrays |= {"done_diverged": done.diverged}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)  # type: ignore[arg-type]


def load_checkpoint(path: str | Path, key: str) -> TrainState | None:
    """The state saved at `path` if it exists and was made under `key`; a checkpoint made under another
    key (other settings or code) or unreadable is deleted, with a log line saying why."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            if meta["key"] != key:
                log.warning(
                    "discarding checkpoint %s: it was made with other settings or another code version "
                    "(key %s..., expected %s...); training from step 0",
                    path,
                    meta["key"][:12],
                    key[:12],
                )
                discard_checkpoint(path)
                return None
            batch = BatchState(
                int(meta["t"]),
                [f[f"param_{i}"] for i in range(meta["n_params"])],
                {k: f[f"metric_{k}"] for k in METRICS},
                f["weights"],
                f["diverged"],
            )
            done = None
            if meta["done"]:
                done = TrainResult(
                    f["done_steps"],
                    f["done_weight_steps"],
                    f["done_weights"],
                    {k: f[f"done_metric_{k}"] for k in METRICS},
                    f["done_diverged"],
                )
    except (OSError, ValueError, KeyError) as err:
        log.warning("discarding unreadable checkpoint %s (%s); training from step 0", path, err)
        discard_checkpoint(path)
        return None
    return TrainState(int(meta["chunk"]), int(meta["start"]), int(meta["rows_per_chunk"]), done, batch)


def discard_checkpoint(path: str | Path) -> None:
    """Delete the checkpoint at `path` and any temporary file a killed write left beside it."""
    path = Path(path)
    path.unlink(missing_ok=True)
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        tmp.unlink(missing_ok=True)


class Checkpointer:
    """An `on_step` hook for `train_many` that saves a checkpoint when `every_s` seconds have passed
    since the last one (or since it was made); `every_s=0` saves at every step boundary (tests)."""

    def __init__(self, path: str | Path, key: str, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.path, self.key, self.every_s, self.clock = Path(path), key, every_s, clock
        self.last = clock()

    def __call__(self, snapshot: Callable[[], TrainState]) -> None:
        """Save `snapshot()` if a checkpoint is due."""
        if self.clock() - self.last < self.every_s:
            return
        began = self.clock()
        state = snapshot()
        save_checkpoint(self.path, self.key, state)
        self.last = self.clock()
        log.info(
            "checkpoint at step %d of models %d-%d written to %s in %.1f s",
            state.batch.t,
            state.start + 1,
            state.start + state.size,
            self.path,
            self.last - began,
        )
