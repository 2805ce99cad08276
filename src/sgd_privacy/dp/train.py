"""Training of the DP study: the members/shadow split, one run of a configuration with per-epoch evaluation.

Algorithms: `sgd` (plain minibatch SGD, shuffled batches), `sam`, and through Opacus (Poisson
sampling, per-example clipping to `max_grad_norm`, Gaussian noise `noise_multiplier * C` on the
sum, RDP accountant): `dpsgd`, `sam_clip` (noise 0) and `dpsam`. `l2` is the optimizer's weight
decay and `dropout` sits before the last layer of every model.

Accounting (see `accounting`): every Poisson batch is one sampled Gaussian step, at the noise
multiplier sigma for DP-SGD and sigma / sqrt(2) for DP-SAM (two releases of the same batch). An
empty Poisson batch is a step like any other: the optimizer adds the noise alone (the clipped sum
is zero) and the accountant books it.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from opacus import PrivacyEngine
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ..errors import ConfigError
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


def train_run(
    conf: dict,
    name: str,
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    seed: int,
    delta: float,
    on_epoch: EpochCallback,
) -> None:
    """Train one run of configuration `name` on (x, y), calling `on_epoch(epoch, model, privacy)` at epoch
    0 (the initialisation) and after every epoch. All randomness comes from `seed` (torch RNG forked)."""
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
        on_epoch(0, model, privacy)
        for epoch in range(1, conf["epochs"] + 1):
            for group in optimizer.param_groups:  # lr step decay ([DG]); constant: factor 1
                group["lr"] = conf["lr"] * lr_factor(conf.get("lr_schedule", "constant"), epoch, conf["epochs"])
            model.train()
            for xb, yb in loader:
                train_step(model, optimizer, xb, yb, conf)
            if privacy.booking is not None:
                privacy.booking.check()
            on_epoch(epoch, model, privacy)
