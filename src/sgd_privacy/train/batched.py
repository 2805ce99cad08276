"""The vectorised SGD trainer: many (seed, replace index, init) runs as one batched computation."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from ..data.neighbours import neighbour_rows
from ..errors import TrainingError
from ..rng import Purpose, permutations
from .convstack import single_threaded_kernels
from .history import METRICS
from .models import Model, dropout_keep_steps, flatten
from .schedule import Schedule
from .shared import LabelledRows, SeedBlocks, SharedBatch, block_runs, from_slots, to_slots, with_ones

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runs:
    """A batch of runs: seed, replace index and whether the run uses the fixed initialisation.

    `rows` (M, n), optional: each run's own training set as base-set rows (position p of run m is
    row rows[m, p]), used instead of D_i for the SGD steps; logged train metrics still cover D_i.
    """

    seeds: np.ndarray
    replace: np.ndarray
    fixed: np.ndarray
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.seeds)

    def take(self, sl: slice) -> Runs:
        """A contiguous sub-batch."""
        return Runs(self.seeds[sl], self.replace[sl], self.fixed[sl], None if self.rows is None else self.rows[sl])


@dataclass
class TrainResult:
    """Logged history of a batch of runs."""

    steps: np.ndarray  # (L,)
    weight_steps: np.ndarray  # (Lw,)
    weights: np.ndarray  # (M, Lw, P) in the training dtype
    metrics: dict[str, np.ndarray]  # name -> (M, L) float64
    diverged: np.ndarray  # (M,) bool

    @staticmethod
    def concat(parts: list[TrainResult]) -> TrainResult:
        """Stack results of consecutive sub-batches."""
        first = parts[0]
        return TrainResult(
            first.steps,
            first.weight_steps,
            np.concatenate([p.weights for p in parts]),
            {k: np.concatenate([p.metrics[k] for p in parts]) for k in first.metrics},
            np.concatenate([p.diverged for p in parts]),
        )


@dataclass
class BatchState:
    """A chunk of runs at a step boundary, before step `t` (and before logging it): everything
    `train_batch` needs to continue bit-identically. The arrays may be views of the trainer's own
    buffers: write or copy them before training continues."""

    t: int
    params: list[np.ndarray]  # each (M, ...) in the training dtype
    metrics: dict[str, np.ndarray]  # name -> (M, L), NaN where not yet logged
    weights: np.ndarray  # (M, Lw, P)
    diverged: np.ndarray  # (M,) bool


@dataclass
class TrainState:
    """Where `train_many` stands at a step boundary: the runs before `start` finished (`done`), the
    chunk of runs from `start` in progress (`batch`), and the chunking it uses."""

    chunk: int  # models per chunk from here on
    start: int
    rows_per_chunk: int  # evaluation rows per chunk of the chunk in progress
    done: TrainResult | None  # runs [0, start)
    batch: BatchState

    @property
    def size(self) -> int:
        """Runs in the chunk in progress."""
        return len(self.batch.diverged)


@dataclass(frozen=True)
class DeviceData:
    """Training and validation arrays, moved to the device once per job."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @staticmethod
    def from_arrays(arrays: dict[str, np.ndarray], device: torch.device, dtype: torch.dtype) -> DeviceData:
        """Copy the prepared arrays to `device` with features in `dtype`."""

        def t(name: str, cast: torch.dtype) -> torch.Tensor:
            return torch.as_tensor(arrays[name]).to(device=device, dtype=cast)

        return DeviceData(t("x_train", dtype), t("y_train", torch.int64), t("x_val", dtype), t("y_val", torch.int64))


def _totals(
    model: Model, params: list[torch.Tensor], x: torch.Tensor, y: torch.Tensor, rows_per_chunk: int
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Summed loss and summed correctness of each model (M,) over all rows of x, and the row count."""
    loss_sum = torch.zeros(params[0].shape[0], dtype=params[0].dtype, device=x.device)
    corr_sum = torch.zeros_like(loss_sum)
    for start in range(0, len(x), rows_per_chunk):
        logits = model.logits(params, x[start : start + rows_per_chunk], shared=True)
        yb = y[start : start + rows_per_chunk]
        loss_sum += model.example_losses(logits, yb).sum(dim=1)
        corr_sum += model.correct(logits, yb).sum(dim=1)
    return loss_sum, corr_sum, float(len(x))


@torch.no_grad()
def evaluate(
    model: Model,
    params: list[torch.Tensor],
    data: DeviceData,
    replace: torch.Tensor,
    rows_per_chunk: int,
    prepared: tuple[LabelledRows, LabelledRows] | None = None,
) -> dict[str, torch.Tensor]:
    """Loss and accuracy of each model on its own D_i (base set minus x_i) and on validation;
    `prepared`: the training and validation rows as `LabelledRows` for the dense models' products."""
    if prepared is not None:
        loss, corr = model.eval_totals(params, prepared[0], rows_per_chunk)
        vloss, vcorr = model.eval_totals(params, prepared[1], rows_per_chunk)
        n, vn = float(len(data.x_train)), float(len(data.x_val))
    else:
        loss, corr, n = _totals(model, params, data.x_train, data.y_train, rows_per_chunk)
        vloss, vcorr, vn = _totals(model, params, data.x_val, data.y_val, rows_per_chunk)
    m = params[0].shape[0]
    xi = data.x_train[replace].unsqueeze(1)  # (M, 1, ...): each model's removed example
    logits_i = model.logits(params, xi, shared=False)
    yi = data.y_train[replace].unsqueeze(1)
    loss = (loss - model.example_losses(logits_i, yi).reshape(m)) / (n - 1)
    acc = (corr - model.correct(logits_i, yi).reshape(m)) / (n - 1)
    return {"train_loss": loss, "train_acc": acc, "val_loss": vloss / vn, "val_acc": vcorr / vn}


def initial_params(
    model: Model, runs: Runs, fixed_init: list[torch.Tensor] | None, device: torch.device, dtype: torch.dtype
) -> list[torch.Tensor]:
    """Each run's starting point: its seed's draw, or the experiment's fixed initialisation."""
    seeds = torch.as_tensor(runs.seeds, dtype=torch.int64, device=device)
    params = model.init(seeds, Purpose.INIT, dtype)
    fixed = torch.as_tensor(runs.fixed, device=device)
    if fixed.any():
        if fixed_init is None:
            raise TrainingError("runs with fixed init need the experiment's fixed initialisation")
        for p, f in zip(params, fixed_init, strict=True):
            p[fixed] = f.to(device=device, dtype=dtype).expand(int(fixed.sum()), *f.shape[1:])
    return params


def train_batch(
    model: Model,
    data: DeviceData,
    runs: Runs,
    schedule: Schedule,
    fixed_init: list[torch.Tensor] | None = None,
    rows_per_chunk: int = 2048,
    on_epoch: Callable[[int], None] | None = None,
    resume: BatchState | None = None,
    on_step: Callable[[Callable[[], BatchState]], None] | None = None,
) -> TrainResult:
    """Train every run of `runs` together with plain constant-step SGD and log its history;
    `on_epoch(k)` is called after each of the k epochs, `on_step(snapshot)` at every step boundary
    (`snapshot()` gives the `BatchState` there), and `resume` continues from such a state."""
    device, dtype = data.x_train.device, data.x_train.dtype
    n_rows = len(data.x_train) - 1 if runs.rows is None else runs.rows.shape[1]  # |D_i| = N - 1
    spe, b = schedule.steps_per_epoch(n_rows), schedule.batch_size
    if spe == 0:
        raise TrainingError(f"batch size {b} exceeds the {n_rows} rows of each neighbouring dataset")
    if resume is None:
        initial = initial_params(model, runs, fixed_init, device, dtype)
    else:
        initial = [torch.as_tensor(p).to(device=device, dtype=dtype) for p in resume.params]
    row_map = None if runs.rows is None else torch.as_tensor(runs.rows, dtype=torch.int64, device=device)
    # one minibatch per seed (`sgd_privacy.train.shared`) for the dense models on D_i; autograd otherwise
    shared = row_map is None and model.shares_rows
    params = [p if shared else p.requires_grad_(True) for p in initial]
    replace = torch.as_tensor(runs.replace, dtype=torch.int64, device=device)
    seeds_np, slot_np = np.unique(np.asarray(runs.seeds, dtype=np.int64), return_inverse=True)
    unique_seeds = torch.as_tensor(seeds_np, device=device)
    seed_slot = torch.as_tensor(slot_np.reshape(-1), device=device)
    blocks = None
    if shared:  # blocks as wide as the first layer's outputs need (a function of the architecture)
        blocks = SeedBlocks.build(slot_np.reshape(-1), block_runs(initial[0].shape[-1]), device)
    # the shared path keeps the parameters in the seed blocks' layout between steps
    slots = to_slots(params, blocks) if blocks is not None else []
    first_out = initial[0].shape[-1]

    def current() -> list[torch.Tensor]:
        """The runs' parameters now, each (M, ...)."""
        return from_slots(slots, blocks, first_out) if blocks is not None else params

    prepared = None
    if model.shares_rows:  # the dense binary models evaluate as products over label-sorted rows
        signed = model.signed_rows
        prepared = (
            LabelledRows.build(data.x_train, data.y_train, signed),
            LabelledRows.build(data.x_val, data.y_val, signed),
        )
    steps, wsteps = schedule.log_steps(n_rows), schedule.weight_steps(n_rows)
    log_at = {int(t): k for k, t in enumerate(steps)}
    keep_w = {int(t): k for k, t in enumerate(wsteps)}
    m = len(runs)
    metrics = {k: np.full((m, len(steps)), np.nan) for k in METRICS}
    weights = np.zeros((m, len(wsteps), model.n_params), dtype=torch.empty(0, dtype=dtype).numpy().dtype)
    diverged = torch.zeros(m, dtype=torch.bool, device=device)
    t = 0
    if resume is not None:
        t = resume.t
        for k in METRICS:
            metrics[k][:] = resume.metrics[k]
        weights[:] = resume.weights
        diverged[:] = torch.as_tensor(resume.diverged, device=device)
    units = model.dropout_units()
    # each step's counter for the dropout hash, on the device once: a Python step number would be
    # copied host-to-device (a blocking transfer on a GPU) at every hash call
    step_keys = torch.arange(schedule.epochs * spe + 1, dtype=torch.int64, device=device) if units else None

    def record(t: int) -> None:
        with torch.no_grad():
            now = current()
            flat = flatten(now)
            values = evaluate(model, now, data, replace, rows_per_chunk, prepared)
            bad = ~torch.isfinite(flat).all(dim=1)
            for name, v in values.items():
                metrics[name][:, log_at[t]] = v.double().cpu().numpy()
                bad |= ~torch.isfinite(v)
            diverged.logical_or_(bad)
            if t in keep_w:
                weights[:, keep_w[t]] = flat.cpu().numpy()

    def snapshot() -> BatchState:
        with torch.no_grad():
            values = [p.detach().cpu().numpy().copy() for p in current()]
            return BatchState(t, values, metrics, weights, diverged.cpu().numpy())

    x_shape = data.x_train.shape[1:]
    y0 = data.y_train[0]  # a run's row at its replaced position is x_0
    if blocks is not None:
        x0_row = torch.zeros(blocks.n_blocks, 1, dtype=torch.int64, device=device)  # row B of a block's batch
        # a run's replaced position p = replace - 1 holds base-set row p + 1 = replace for the other runs
        replaced_row = replace.index_select(0, blocks.source).reshape(blocks.n_blocks, 1, blocks.width)
        x_rows = with_ones(data.x_train)  # (N, d + 1): the bias rides in the products
    # dropout masks of `window` steps at a time (about 2**20 draws), which saves the hash's ~200 small ops a step
    window = max(1, min(64, 2**20 // max(1, len(unique_seeds) * b * units)))
    window_start, keep_window = 0, torch.empty(0)
    # the shared step's tensors are small: on the CPU it runs on one thread (no parallel region to wait
    # for, and every kernel of a run's step then single-threaded); evaluation keeps the job's threads
    step_threads = single_threaded_kernels if device.type == "cpu" else contextlib.nullcontext
    first_epoch, first_step = divmod(t, spe)
    for epoch in range(first_epoch, schedule.epochs):
        perm = permutations(unique_seeds, Purpose.PERMUTATION, epoch, n_rows)  # (seeds, n_rows)
        for s in range(first_step if epoch == first_epoch else 0, spe):
            if on_step:
                on_step(snapshot)
            if t in log_at:
                record(t)
            seed_positions = perm[:, s * b : (s + 1) * b]
            keep_seed = None
            if step_keys is not None:  # a function of the seed and step: drawn per seed, for a window of steps
                if not window_start <= t < window_start + len(keep_window):
                    window_start = t
                    keys = step_keys[t : min(t + window, len(step_keys))]
                    keep_window = dropout_keep_steps(unique_seeds, keys, b, units, model.dropout, dtype)
                keep_seed = keep_window[t - window_start]
            if blocks is not None:
                # neighbour_rows' rows (position + 1) wherever a run's replaced example is not drawn
                block_rows = seed_positions.index_select(0, blocks.block_seed) + 1  # (n_blocks, B)
                rows_x0 = torch.cat([block_rows, x0_row], dim=1).reshape(-1)
                xs = x_rows.index_select(0, rows_x0).reshape(blocks.n_blocks, b + 1, -1)
                hit = block_rows.unsqueeze(-1) == replaced_row  # (n_blocks, B, width): the run's row is x_0
                y_rows = data.y_train.index_select(0, block_rows.reshape(-1)).reshape(blocks.n_blocks, b, 1)
                yb = torch.where(hit, y0, y_rows)
                with torch.no_grad(), step_threads():
                    model.shared_step(slots, SharedBatch(xs, hit, yb, keep_seed, blocks), schedule.lr)
                t += 1
                continue
            keep = None if keep_seed is None else keep_seed.index_select(0, seed_slot)
            positions = seed_positions.index_select(0, seed_slot)
            rows = neighbour_rows(positions, replace) if row_map is None else row_map.gather(1, positions)
            flat_rows = rows.reshape(-1)
            xb = data.x_train.index_select(0, flat_rows).reshape(*rows.shape, *x_shape)
            yb = data.y_train.index_select(0, flat_rows).reshape(rows.shape)
            logits = model.logits(params, xb, shared=False, keep=keep)
            auto_grads = torch.autograd.grad(logits, params, model.logit_grad(logits.detach(), yb))
            with torch.no_grad():
                for p, g in zip(params, auto_grads, strict=True):
                    p.sub_(schedule.lr * g)
            t += 1
        if on_epoch:
            on_epoch(epoch + 1)
    if t in log_at:
        record(t)
    return TrainResult(steps, wsteps, weights, metrics, diverged.cpu().numpy())


def training_bytes(model: Model, schedule: Schedule, n_rows: int, itemsize: int) -> int:
    """Bytes one model needs in a training step: parameters, gradients and update temporaries
    (6 x P), batch activations kept for the backward pass (3 x activations x b), and its share of
    the epochs' permutations (int64: the previous epoch's, and the new one's hash keys, argsort output
    and gathered copy, 4 x 8 bytes a row; measured peak 3.0 x 8 bytes a row for the new one)."""
    return itemsize * (6 * model.n_params + 3 * model.activation_size() * schedule.batch_size) + 4 * 8 * n_rows


def eval_rows(model: Model, models: int, n_eval_rows: int, budget_mb: float, itemsize: int) -> int:
    """Evaluation rows per chunk for a chunk of `models` models (its real size): the half of the
    budget given to evaluation over their activations, at least 16 rows, never more rows than exist."""
    half = budget_mb * 2**20 / 2
    rows = int(half // (itemsize * model.eval_activation_size() * max(models, 1)))
    return max(16, min(rows, max(n_eval_rows, 16)))


def chunking(model: Model, schedule: Schedule, n_eval_rows: int, budget_mb: float, itemsize: int) -> tuple[int, int]:
    """(models per chunk, evaluation rows per chunk of that many models): half the budget for training
    steps (`training_bytes`, the permutations over the n_eval_rows training rows included), half for
    evaluating the chunk's models (`eval_rows`; `train_many` sizes each chunk's from its real size)."""
    half = budget_mb * 2**20 / 2
    models = max(1, int(half // training_bytes(model, schedule, n_eval_rows, itemsize)))
    return models, eval_rows(model, models, n_eval_rows, budget_mb, itemsize)


def device_budget_mb(budget_mb: float, device: torch.device, free_fraction: float = 0.9) -> float:
    """The memory budget to size chunks by: `budget_mb`, and on CUDA at most `free_fraction` of the GPU
    memory free now (torch.cuda.mem_get_info), which other processes or this job's data may have taken."""
    if device.type != "cuda":
        return budget_mb
    free, _ = torch.cuda.mem_get_info(device)
    return min(budget_mb, free_fraction * free / 2**20)


def _pass_state(
    on_step: Callable[[Callable[[], TrainState]], None],
    parts: list[TrainResult],
    chunk: int,
    start: int,
    rows_per_chunk: int,
    snapshot: Callable[[], BatchState],
) -> None:
    """Hand `on_step` the `TrainState` of a chunk's step boundary (built only if it asks)."""
    on_step(lambda: TrainState(chunk, start, rows_per_chunk, TrainResult.concat(parts) if parts else None, snapshot()))


OOM_ERRORS: tuple[type[BaseException], ...] = (torch.OutOfMemoryError,)


def train_many(
    model: Model,
    data: DeviceData,
    runs: Runs,
    schedule: Schedule,
    fixed_init: list[torch.Tensor] | None = None,
    budget_mb: int = 2048,
    progress: Callable[[str], None] | None = log.info,
    resume: TrainState | None = None,
    on_step: Callable[[Callable[[], TrainState]], None] | None = None,
) -> TrainResult:
    """Train `runs` in chunks that fit `budget_mb` (on CUDA also the free GPU memory), reporting models
    done, models/s and ETA. A chunk that runs out of memory is retried at half its size, and later
    chunks keep the smaller size (logged): grouping does not change a run's weights (the contract).
    `on_step(snapshot)` is called at every step boundary (`snapshot()` gives the `TrainState` there);
    `resume` continues from such a state with its chunking, bit-identically."""
    budget = device_budget_mb(budget_mb, data.x_train.device)
    chunk, _ = chunking(model, schedule, len(data.x_train), budget, data.x_train.element_size())
    parts: list[TrainResult] = []
    start_time, start, batch = time.perf_counter(), 0, None
    if resume is not None:
        chunk, start, batch = resume.chunk, resume.start, resume.batch
        parts = [] if resume.done is None else [resume.done]
    while start < len(runs):
        size = min(chunk, len(runs) - start)
        rows_per_chunk = eval_rows(model, size, len(data.x_train), budget, data.x_train.element_size())
        if batch is not None and resume is not None:
            size, rows_per_chunk = resume.size, resume.rows_per_chunk
        step_hook = None if on_step is None else partial(_pass_state, on_step, parts, chunk, start, rows_per_chunk)

        def report(
            epoch: int, start: int = start, size: int = size, say: Callable[[str], None] = progress or log.info
        ) -> None:
            done = start + size * epoch / schedule.epochs
            rate = done / max(time.perf_counter() - start_time, 1e-9)
            say(
                f"trained {done:.0f}/{len(runs)} models (epoch {epoch}/{schedule.epochs} of models "
                f"{start + 1}-{start + size}), {rate:.1f} models/s, ETA {(len(runs) - done) / rate:.0f} s"
            )

        try:
            part = train_batch(
                model,
                data,
                runs.take(slice(start, start + size)),
                schedule,
                fixed_init,
                rows_per_chunk,
                report if progress else None,
                batch,
                step_hook,
            )
        except OOM_ERRORS as err:
            if size == 1:
                raise TrainingError(
                    f"one model does not fit in the device's memory ({err}); lower training.batch_size "
                    "or train on a device with more memory"
                ) from err
            chunk, batch = size // 2, None  # a resumed chunk restarts from its first step at the smaller size
            if data.x_train.device.type == "cuda":
                torch.cuda.empty_cache()
            log.warning("out of memory training %d models at once; retrying them %d at a time", size, chunk)
            continue
        parts.append(part)
        start, batch = start + size, None
    return TrainResult.concat(parts)
