"""Training of the DP study: the members/shadow split, one run of a configuration with per-epoch evaluation.

Algorithms: `sgd` (plain minibatch SGD, shuffled batches), `sam`, and through Opacus (Poisson
sampling, per-example clipping to `max_grad_norm`, Gaussian noise `noise_multiplier * C` on the
sum, RDP accountant): `dpsgd`, `sam_clip` (noise 0) and `dpsam`. `l2` is the optimizer's weight
decay and `dropout` sits before the last layer of every model.

Accounting (see `accounting`): every Poisson batch is one sampled Gaussian step, at the noise
multiplier sigma for DP-SGD and sigma / sqrt(2) for DP-SAM (two releases of the same batch). An
empty Poisson batch is a step like any other: the optimizer adds the noise alone (the clipped sum
is zero) and the accountant books it.

Checkpoints (`RunCheckpoint`): at step boundaries a run saves its model and optimizer state, the
accountant's history, torch's RNG states (now and at the start of the epoch: the loader's shuffle
seed or the Poisson sampler's draws, Opacus's noise and dropout all come from torch's generator) and
the caller's per-epoch tables, so that a resumed run is bit-identical (CPU) to an uninterrupted one.
"""

from __future__ import annotations

import io
import logging
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from opacus import PrivacyEngine
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..errors import ConfigError
from ..train import checkpoint as ckpt
from .accounting import BatchAccountant, calibrated_noise_multiplier, effective_noise_multiplier
from .models import build_model, check_clippable
from .sam import sam_step
from .settings import CLIPPED, SAM, lr_factor

log = logging.getLogger(__name__)


def stratified_halves(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices in two halves per class at random (the first half gets the odd row); both sorted."""
    labels = np.asarray(labels)
    perm = np.random.default_rng(seed).permutation(len(labels))
    grouped = perm[np.argsort(labels[perm], kind="stable")]
    ordered = labels[grouped]
    rank = np.arange(len(ordered)) - np.searchsorted(ordered, ordered, side="left")
    counts = np.bincount(ordered)[ordered] if len(ordered) else ordered
    first = rank < (counts + 1) // 2
    return np.sort(grouped[first]), np.sort(grouped[~first])


@dataclass(frozen=True)
class StudySplit:
    """Row indices of the study: target members/non-members, the members the attack scores (`challenge`), and
    the shadow model's members/non-members."""

    members: np.ndarray  # training rows of the target
    nonmembers: np.ndarray  # test rows of the target: its test accuracy and the attack's non-members
    shadow_members: np.ndarray  # the shadow model's training rows
    shadow_nonmembers: np.ndarray  # the shadow model's held-out rows (of the `shadow_nonmembers_from` split)
    challenge: np.ndarray  # positions in `members` of the members the attack scores (all by default)
    shadow_nonmembers_from: str = "test"  # "test" (the halves) or "train" (with split sizes)


SPLIT_KEYS = ("n_members", "n_nonmembers", "n_challenge_members")


def _sizes_error(dataset: str, message: str) -> ConfigError:
    return ConfigError(f"config key 'dp.split_sizes.{dataset}': {message}")


def study_split(
    y_train: np.ndarray, y_test: np.ndarray, seed: int, sizes: dict | None = None, dataset: str = ""
) -> StudySplit:
    """The study's rows. Without `sizes`: members = one stratified half of the training rows, non-members = one
    half of the test rows, the other halves the shadow model's, every member challenged. With `sizes`
    ({n_members, n_nonmembers, n_challenge_members}): `n_members` random training rows and `n_nonmembers` random
    test rows; the other training rows, in stratified halves, are the shadow model's members / non-members; the
    attack scores `n_challenge_members` random members (null: all)."""
    if not sizes:
        members, shadow_members = stratified_halves(y_train, seed)
        nonmembers, shadow_nonmembers = stratified_halves(y_test, seed + 1)
        return StudySplit(members, nonmembers, shadow_members, shadow_nonmembers, np.arange(len(members)))
    n_train, n_test = len(y_train), len(y_test)
    n_m, n_n = sizes["n_members"], sizes["n_nonmembers"]
    n_c = sizes.get("n_challenge_members")
    n_c = n_m if n_c is None else n_c
    if n_m + 2 > n_train:
        raise _sizes_error(
            dataset,
            f"n_members {n_m} leaves fewer than 2 of the {n_train} training rows for the shadow model's members and "
            f"non-members; lower n_members to at most {n_train - 2}",
        )
    if n_n > n_test:
        raise _sizes_error(dataset, f"n_nonmembers {n_n} exceeds the {n_test} test rows; lower n_nonmembers")
    if n_c > n_m:
        raise _sizes_error(dataset, f"n_challenge_members {n_c} exceeds n_members {n_m}; lower n_challenge_members")
    gen = np.random.default_rng([seed, 7])
    train_perm, test_perm = gen.permutation(n_train), gen.permutation(n_test)
    members, rest = np.sort(train_perm[:n_m]), np.sort(train_perm[n_m:])
    first, second = stratified_halves(np.asarray(y_train)[rest], seed)
    challenge = np.sort(gen.permutation(n_m)[:n_c])
    return StudySplit(members, np.sort(test_perm[:n_n]), rest[first], rest[second], challenge, "train")


def run_seed(seed: int, repeat: int) -> int:
    """The seed of one repeat of a configuration (independent streams per repeat)."""
    return int(np.random.SeedSequence([seed, repeat]).generate_state(1)[0])


def releases_per_step(algorithm: str) -> int:
    """Noisy gradient releases per batch: 2 for the SAM algorithms (ascent and descent), else 1."""
    return 2 if algorithm in SAM else 1


@dataclass
class Privacy:
    """What the accountant needs: the noise multiplier of each release, the sampling rate, the noisy releases
    per batch (2 for DP-SAM) and the hook that books each batch as one sampled Gaussian step."""

    noise_multiplier: float
    sample_rate: float
    releases_per_step: int
    engine: PrivacyEngine | None
    booking: BatchAccountant | None = None

    @property
    def accounted_noise_multiplier(self) -> float:
        """The noise multiplier of the one sampled Gaussian step each batch is booked as (sigma / sqrt(releases))."""
        if self.releases_per_step == 0:
            return self.noise_multiplier
        return effective_noise_multiplier(self.noise_multiplier, self.releases_per_step)

    def epsilon(self, delta: float) -> float:
        """The RDP accountant's epsilon so far (inf without noise)."""
        if self.engine is None or self.noise_multiplier == 0:
            return math.inf
        return float(self.engine.get_epsilon(delta))

    def steps(self) -> int:
        """Batches booked so far (the accountant's steps; empty Poisson batches included)."""
        return 0 if self.booking is None else self.booking.steps()

    def releases(self) -> int:
        """Noisy gradient releases so far (releases_per_step per booked batch)."""
        return 0 if self.booking is None else self.booking.releases


def predict(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> dict[str, np.ndarray]:
    """Per-example cross-entropy loss, class probabilities and labels (eval mode, no gradients)."""
    was_training = model.training
    model.eval()
    logp = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logp.append(torch.log_softmax(model(x[i : i + batch]).double(), dim=1))
    model.train(was_training)
    lp = torch.cat(logp)
    loss = -lp.gather(1, y.reshape(-1, 1)).squeeze(1)
    return {"loss": loss.cpu().numpy(), "probs": lp.exp().cpu().numpy(), "y": y.cpu().numpy()}


def _noise_for(conf: dict, name: str, delta: float, sample_rate: float, steps: int, releases: int) -> float:
    """The per-release noise multiplier of a clipped configuration: given, 0 for `sam_clip` or an infinite
    target, else calibrated so that the run's `steps` batches (each one sampled step at sigma / sqrt(releases))
    spend `target_epsilon`."""
    if conf["algorithm"] == "sam_clip":
        return 0.0
    if "noise_multiplier" in conf:
        return float(conf["noise_multiplier"])
    target = float(conf["target_epsilon"])
    if math.isinf(target):
        return 0.0
    return calibrated_noise_multiplier(target, delta, sample_rate, steps, releases, name)


def make_private(
    model: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader, conf: dict, delta: float, name: str = ""
) -> tuple[nn.Module, torch.optim.Optimizer, DataLoader, Privacy]:
    """Wrap a clipped configuration's model, optimizer and loader with Opacus (Poisson sampling, RDP), with
    each batch booked once (`BatchAccountant`) in place of Opacus's one booking per release."""
    releases = releases_per_step(conf["algorithm"])
    sample_rate = 1.0 / len(loader)
    noise = _noise_for(conf, name, delta, sample_rate, conf["epochs"] * len(loader), releases)
    engine = PrivacyEngine(accountant="rdp")
    model, optimizer, loader = engine.make_private(
        module=model,
        optimizer=optimizer,
        data_loader=loader,
        max_grad_norm=conf["max_grad_norm"],
        noise_multiplier=noise,
        poisson_sampling=True,
    )
    booking = BatchAccountant(engine.accountant, sample_rate, releases)
    optimizer.attach_step_hook(booking)  # type: ignore[attr-defined]  # replaces Opacus's per-release hook
    return model, optimizer, loader, Privacy(noise, sample_rate, releases, engine, booking)


Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    xb: torch.Tensor,
    yb: torch.Tensor,
    conf: dict,
    loss_fn: Loss | None = None,
) -> None:
    """One update on the batch (xb, yb): a SAM step (radius `rho`) for the SAM algorithms, else an optimizer
    step; `loss_fn(outputs, targets)` defaults to cross-entropy. An empty Poisson batch is not skipped: the
    DP optimizer clips nothing, adds the noise alone and books the step."""
    loss_fn = loss_fn if loss_fn is not None else nn.CrossEntropyLoss()
    if conf["algorithm"] in SAM:
        params = [p for p in model.parameters() if p.requires_grad]
        sam_step(params, optimizer, lambda: loss_fn(model(xb), yb), conf["rho"])
    else:
        optimizer.zero_grad()
        loss_fn(model(xb), yb).backward()
        optimizer.step()


EpochCallback = Callable[[int, nn.Module, Privacy], None]
Tables = dict[str, pd.DataFrame]


@dataclass
class RunCheckpoint:
    """Where and how often `train_run` checkpoints, and the caller's per-epoch tables that go with it:
    `tables()` gives them at a step boundary, `restore(tables)` puts them back on resuming. `key`
    (`ckpt.fingerprint`) covers everything that decides the run; `every_s` None resumes but writes none."""

    path: Path
    key: str
    every_s: float | None
    tables: Callable[[], Tables] = field(default=dict)
    restore: Callable[[Tables], None] = field(default=lambda tables: None)
    progress: Callable[[str], None] | None = None


@dataclass
class RunState:
    """A run at a step boundary: `meta` (epoch, batches done in it, accountant) and named arrays."""

    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]


def _table_bytes(frame: pd.DataFrame) -> np.ndarray:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame), buffer)
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


def _table_from(data: np.ndarray) -> pd.DataFrame:
    return pq.read_table(io.BytesIO(data.tobytes())).to_pandas()


def _rng(state: torch.Tensor) -> np.ndarray:
    return state.numpy().copy()


def _base(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer whose state is the run's (Opacus's DPOptimizer wraps the original one)."""
    return getattr(optimizer, "original_optimizer", optimizer)


def run_state(
    epoch: int,
    done: int,
    epoch_rng: torch.Tensor,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    privacy: Privacy,
    tables: Tables,
    device: torch.device,
) -> RunState:
    """The state of a run after `done` batches of `epoch`; `epoch_rng` is torch's CPU RNG state at the epoch's start."""
    opt = _base(optimizer).state_dict()
    arrays = {f"model:{k}": v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    buffers: dict[str, list[str]] = {}
    for index, values in opt["state"].items():
        kept = {k: v for k, v in values.items() if v is not None}  # an absent buffer reads as None again
        buffers[str(index)] = sorted(kept)
        arrays |= {f"opt:{index}:{k}": torch.as_tensor(v).detach().cpu().numpy() for k, v in kept.items()}
    arrays |= {"rng": _rng(torch.get_rng_state()), "epoch_rng": _rng(epoch_rng)}
    if device.type == "cuda":
        arrays["cuda_rng"] = _rng(torch.cuda.get_rng_state(device))
    arrays |= {f"table:{name}": _table_bytes(frame) for name, frame in tables.items()}
    history = [] if privacy.engine is None else [list(h) for h in privacy.engine.accountant.history]
    meta = {"epoch": epoch, "done": done, "param_groups": opt["param_groups"], "buffers": buffers}
    meta |= {"history": history, "releases": privacy.releases()}
    return RunState(meta, arrays)


def restore_run(
    state: RunState, model: nn.Module, optimizer: torch.optim.Optimizer, privacy: Privacy, device: torch.device
) -> Tables:
    """Put a saved run's model, optimizer and accountant state back; its tables (torch's RNG is set by the caller)."""
    meta, arrays = state.meta, state.arrays
    model.load_state_dict({k[6:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("model:")})
    opt_state = {
        int(index): {k: torch.from_numpy(arrays[f"opt:{index}:{k}"]).to(device) for k in names}
        for index, names in meta["buffers"].items()
    }
    _base(optimizer).load_state_dict({"state": opt_state, "param_groups": meta["param_groups"]})
    if privacy.engine is not None and privacy.booking is not None:
        privacy.engine.accountant.history = [tuple(h) for h in meta["history"]]
        privacy.booking.releases = int(meta["releases"])
    return {k[6:]: _table_from(v) for k, v in arrays.items() if k.startswith("table:")}


def _write_run(path: Path, key: str, state: RunState) -> None:
    ckpt.write_checkpoint(path, key, state.meta, state.arrays)


def _describe_run(state: RunState) -> str:
    return f"epoch {state.meta['epoch']} after {state.meta['done']} batches"


def _epoch_batches(loader: DataLoader, resume: RunState | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's batches of one epoch; resuming in it after `done` batches: its first `done` drawn
    again from the epoch's starting RNG state (set by the caller) and dropped (the shuffle is drawn at the
    first batch, the Poisson masks one per batch), then the rest from the saved RNG states."""
    batches = iter(loader)
    if resume is not None:
        for _ in range(int(resume.meta["done"])):
            next(batches)
        torch.set_rng_state(torch.from_numpy(resume.arrays["rng"]))
        if "cuda_rng" in resume.arrays:
            torch.cuda.set_rng_state(torch.from_numpy(resume.arrays["cuda_rng"]))
    return batches


def train_run(
    conf: dict,
    name: str,
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    seed: int,
    delta: float,
    on_epoch: EpochCallback,
    checkpoint: RunCheckpoint | None = None,
) -> None:
    """Train one run of configuration `name` on (x, y), calling `on_epoch(epoch, model, privacy)` at epoch
    0 (the initialisation) and after every epoch. All randomness comes from `seed` (torch RNG forked).
    With `checkpoint`, a run saved there under the same key resumes (bit-identically on the CPU; one
    saved under another key is discarded) and a checkpoint is written every `checkpoint.every_s`."""
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
        # Opacus's hooks on a first layer whose input needs no gradient: expected, harmless
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        torch.manual_seed(seed)
        model = build_model(conf, tuple(x.shape[1:]), n_classes).to(x.device)
        optimizer: torch.optim.Optimizer = torch.optim.SGD(
            model.parameters(), lr=conf["lr"], momentum=conf["momentum"], weight_decay=conf["l2"]
        )
        loader = DataLoader(TensorDataset(x, y), batch_size=conf["batch_size"], shuffle=True)
        privacy = Privacy(0.0, conf["batch_size"] / len(x), 0, None)
        if conf["algorithm"] in CLIPPED:
            check_clippable(model, name)
            model, optimizer, loader, privacy = make_private(model, optimizer, loader, conf, delta, name)
        resume, saver = None, None
        if checkpoint is not None:
            read = ckpt.read_checkpoint(checkpoint.path, checkpoint.key)
            resume = None if read is None else RunState(*read)
            if checkpoint.every_s is not None:
                saver = ckpt.Checkpointer(
                    checkpoint.path, checkpoint.key, checkpoint.every_s, write=_write_run, describe=_describe_run
                )
        tables = checkpoint.tables if checkpoint is not None else dict
        first = 1
        if resume is not None and checkpoint is not None:
            checkpoint.restore(restore_run(resume, model, optimizer, privacy, x.device))
            first = int(resume.meta["epoch"])
            torch.set_rng_state(torch.from_numpy(resume.arrays["epoch_rng"]))
            if checkpoint.progress:
                checkpoint.progress(f"resuming from checkpoint {checkpoint.path}: {_describe_run(resume)}")
        else:
            on_epoch(0, model, privacy)
        for epoch in range(first, conf["epochs"] + 1):
            for group in optimizer.param_groups:  # lr step decay ([DG]); constant: factor 1
                group["lr"] = conf["lr"] * lr_factor(conf.get("lr_schedule", "constant"), epoch, conf["epochs"])
            model.train()
            epoch_rng = torch.get_rng_state()
            resuming = resume if epoch == first else None
            done = 0 if resuming is None else int(resuming.meta["done"])
            for xb, yb in _epoch_batches(loader, resuming):
                train_step(model, optimizer, xb, yb, conf)
                done += 1
                if saver is not None:

                    def snapshot(e: int = epoch, d: int = done, r: torch.Tensor = epoch_rng) -> RunState:
                        return run_state(e, d, r, model, optimizer, privacy, tables(), x.device)

                    saver(snapshot)
            if privacy.booking is not None:
                privacy.booking.check()
            on_epoch(epoch, model, privacy)
