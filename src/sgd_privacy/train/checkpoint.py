"""Checkpoints of a training job: a killed or requeued job resumes where it stopped, bit-identically.

A checkpoint is one `.npz` file beside the job's output, written atomically (temporary file and
`os.replace`) at a step boundary: a JSON `meta` record and named arrays (`write_checkpoint`,
`read_checkpoint`). It carries a key (`fingerprint`) over everything that decides the result; a
checkpoint whose key differs (another config slice, other data, another code version of the step)
is discarded with a log line. `Checkpointer` saves one every so many seconds, and at once when the
process was sent SIGTERM (`stop_on_sigterm`), then stops the job (`Terminated`).

The grid trainer's checkpoint (`save_checkpoint`, `load_checkpoint`) holds the parameters of the
chunk of models in progress, the step, the history logged so far (finished chunks included) and the
chunking; its randomness is a counter-based hash of (seed, purpose, epoch or step), so the step is
its whole random state. The DP trainer's (`sgd_privacy.dp.train`) holds the model, the optimizer, the
accountant and torch's RNG states.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch

from ..io import atomic_path
from .batched import METRICS, BatchState, Runs, TrainResult, TrainState

log = logging.getLogger(__name__)

# Bump whenever a step, the logging or the checkpoint layout changes what a resumed run computes.
# 2: one minibatch per seed for the dense models (issue #22); 3: lr folded into the loss gradient,
# and on the CPU the dense step's middle as one compiled loop (sgd_privacy.train.fused)
CHECKPOINT_VERSION = 3


def checkpoint_path(output: str | Path) -> Path:
    """Where the checkpoint of the job writing `output` lives: beside it, `{output}.ckpt`."""
    return Path(f"{output}.ckpt")


def digest(*arrays: np.ndarray) -> str:
    """sha256 over arrays' dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _numba_version() -> str:
    """numba's installed version, read without importing it."""
    return importlib.metadata.version("numba")


def fingerprint(record: dict[str, Any]) -> str:
    """sha256 of `record` (JSON) with the code version of the step: `CHECKPOINT_VERSION` and the
    versions of torch and numba (which compiles the CPU's dense step)."""
    full = {"version": CHECKPOINT_VERSION, "torch": torch.__version__, "numba": _numba_version(), **record}
    return hashlib.sha256(json.dumps(full, sort_keys=True, default=str).encode()).hexdigest()


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
    (`CHECKPOINT_VERSION`, torch's and numba's versions), the experiment, its training slice, the shard's spec and
    runs, the data and fixed initialisation, and `computation` (device type, CNN convolution path)."""
    record = {
        "experiment": experiment,
        "training": slice_,
        "shard": spec,
        "runs": digest(runs.seeds, runs.replace, runs.fixed),
        "data": digest(*(arrays[k] for k in sorted(arrays))),
        "fixed_init": None if fixed_init is None else digest(fixed_init),
        "computation": computation,
    }
    return fingerprint(record)


def write_checkpoint(path: str | Path, key: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Write `meta` (JSON) and `arrays` under `key` to `path` atomically (a kill leaves the previous one whole)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, meta=np.array(json.dumps({**meta, "key": key})), **arrays)  # type: ignore[arg-type]


def read_checkpoint(path: str | Path, key: str) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """The meta record and arrays saved at `path` if it exists and was made under `key`; a checkpoint made
    under another key (other settings or code) or unreadable is deleted, with a log line saying why."""
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
            arrays = {name: f[name] for name in f.files if name != "meta"}
    except (OSError, ValueError, KeyError) as err:
        log.warning("discarding unreadable checkpoint %s (%s); training from step 0", path, err)
        discard_checkpoint(path)
        return None
    return meta, arrays


def save_checkpoint(path: str | Path, key: str, state: TrainState) -> None:
    """Write the grid trainer's `state` under `key` to `path` atomically."""
    batch, done = state.batch, state.done
    meta = {"chunk": state.chunk, "start": state.start, "rows_per_chunk": state.rows_per_chunk}
    meta |= {"t": batch.t, "n_params": len(batch.params), "done": done is not None}
    arrays = {f"param_{i}": p for i, p in enumerate(batch.params)}
    arrays |= {f"metric_{k}": batch.metrics[k] for k in METRICS}
    arrays |= {"weights": batch.weights, "diverged": batch.diverged}
    if done is not None:
        arrays |= {"done_steps": done.steps, "done_weight_steps": done.weight_steps, "done_weights": done.weights}
        arrays |= {f"done_metric_{k}": done.metrics[k] for k in METRICS}
        arrays |= {"done_diverged": done.diverged}
    write_checkpoint(path, key, meta, arrays)


def load_checkpoint(path: str | Path, key: str) -> TrainState | None:
    """The grid trainer's state saved at `path` if it exists and was made under `key` (`read_checkpoint`)."""
    read = read_checkpoint(path, key)
    if read is None:
        return None
    meta, f = read
    try:
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
        return TrainState(int(meta["chunk"]), int(meta["start"]), int(meta["rows_per_chunk"]), done, batch)
    except (ValueError, KeyError) as err:
        log.warning("discarding unreadable checkpoint %s (%s); training from step 0", path, err)
        discard_checkpoint(path)
        return None


def grid_resume(
    path: str | Path, key: str, every_s: float | None, progress: Callable[[str], None] | None
) -> tuple[TrainState | None, Checkpointer[TrainState] | None]:
    """For a job of the grid trainer (`train_many`): the state to resume from (the checkpoint at `path` made
    under `key`, said in `progress`) and the `on_step` hook saving there every `every_s` s (None: none)."""
    resume = load_checkpoint(path, key)
    if resume is not None and progress:
        first, last = resume.start + 1, resume.start + resume.size
        progress(
            f"resuming from checkpoint {path}: {resume.start} models done, models {first}-{last} at step {resume.batch.t}"
        )
    return resume, None if every_s is None else Checkpointer(path, key, every_s)


def discard_checkpoint(path: str | Path) -> None:
    """Delete the checkpoint at `path` and any temporary file a killed write left beside it."""
    path = Path(path)
    path.unlink(missing_ok=True)
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        tmp.unlink(missing_ok=True)


State = TypeVar("State")
_SIGTERM = threading.Event()


class Terminated(SystemExit):
    """Raised right after the checkpoint that a SIGTERM asked for: the job exits with status 143 (128 +
    SIGTERM, what a process killed by SIGTERM reports), so Snakemake and Slurm see a failed attempt."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


def sigterm_received() -> bool:
    """Whether SIGTERM arrived while `stop_on_sigterm` was active."""
    return _SIGTERM.is_set()


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """While active (in the main thread), SIGTERM does not kill the process: the next `Checkpointer` call
    (the next step boundary) writes a checkpoint whatever its interval, then raises `Terminated`. Slurm
    sends SIGTERM at a time limit, on preemption, requeue or scancel (then SIGKILL after KillWait), and
    earlier with `sbatch --signal=TERM@<seconds>`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        _SIGTERM.set()
        log.warning("SIGTERM received: writing a checkpoint at the next step boundary, then stopping")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        _SIGTERM.clear()


@contextlib.contextmanager
def job_checkpoints(output: str | Path, minutes: float | str) -> Iterator[tuple[Path, float | None]]:
    """A training job's checkpoint: its path beside `output` and its interval in seconds from the
    `checkpoint_minutes` resource (None for 0: resume from one, write none); while checkpointing, SIGTERM
    writes one at the next step boundary and stops the job (`stop_on_sigterm`)."""
    path, every = checkpoint_path(output), float(minutes)
    if every <= 0:
        yield path, None
        return
    with stop_on_sigterm():
        log.info("checkpoints every %g min to %s (and on SIGTERM, then stopping)", every, path)
        yield path, every * 60


def _describe_train_state(state: TrainState) -> str:
    return f"step {state.batch.t} of models {state.start + 1}-{state.start + state.size}"


class Checkpointer(Generic[State]):
    """An `on_step` hook that saves a checkpoint when `every_s` seconds have passed since the last one (or
    since it was made; `every_s=0`: at every step boundary, tests), or at once after a SIGTERM
    (`stop_on_sigterm`), then stopping the job (`Terminated`). `write(path, key, state)` saves the
    state (default: the grid trainer's `save_checkpoint`), `describe(state)` names it in the log line."""

    def __init__(
        self,
        path: str | Path,
        key: str,
        every_s: float,
        clock: Callable[[], float] = time.monotonic,
        write: Callable[[Path, str, State], None] | None = None,
        describe: Callable[[State], str] = _describe_train_state,  # type: ignore[assignment]
    ) -> None:
        self.path, self.key, self.every_s, self.clock = Path(path), key, every_s, clock
        self.write, self.describe = write, describe
        self.last = clock()

    def __call__(self, snapshot: Callable[[], State]) -> None:
        """Save `snapshot()` if a checkpoint is due; after a SIGTERM, save it and stop."""
        stopping = sigterm_received()
        if not stopping and self.clock() - self.last < self.every_s:
            return
        began = self.clock()
        state = snapshot()
        write = self.write if self.write is not None else save_checkpoint  # looked up now: tests replace it
        write(self.path, self.key, state)  # type: ignore[arg-type]
        self.last = self.clock()
        log.info("checkpoint at %s written to %s in %.1f s", self.describe(state), self.path, self.last - began)
        if stopping:
            log.warning("stopping after SIGTERM; the next attempt resumes from %s", self.path)
            raise Terminated
