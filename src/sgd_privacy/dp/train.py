"""Training of the DP study: the members/shadow split, one run of a configuration with per-epoch evaluation.

Algorithms: `sgd` (plain minibatch SGD, shuffled batches), `sam`, and through Opacus (Poisson
sampling, per-example clipping to `max_grad_norm`, Gaussian noise `noise_multiplier * C` on the
sum, RDP accountant): `dpsgd`, `sam_clip` (noise 0) and `dpsam`. `l2` is the optimizer's weight
decay and `dropout` sits before the last layer of every model.
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
from opacus.accountants.utils import get_noise_multiplier
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

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
    """Row indices of the study: target members/non-members and the shadow model's members/non-members."""

    members: np.ndarray  # half of the training rows: the target's training set
    nonmembers: np.ndarray  # half of the test rows: the target's test set
    shadow_members: np.ndarray  # the other training half
    shadow_nonmembers: np.ndarray  # the other test half


def study_split(y_train: np.ndarray, y_test: np.ndarray, seed: int) -> StudySplit:
    """Members = one stratified half of the training rows, non-members = one half of the test rows."""
    members, shadow_members = stratified_halves(y_train, seed)
    nonmembers, shadow_nonmembers = stratified_halves(y_test, seed + 1)
    return StudySplit(members, nonmembers, shadow_members, shadow_nonmembers)


def run_seed(seed: int, repeat: int) -> int:
    """The seed of one repeat of a configuration (independent streams per repeat)."""
    return int(np.random.SeedSequence([seed, repeat]).generate_state(1)[0])


@dataclass
class Privacy:
    """What the accountant needs: noise multiplier, sampling rate, noisy releases per step (2 for DP-SAM)."""

    noise_multiplier: float
    sample_rate: float
    releases_per_step: int
    engine: PrivacyEngine | None

    def epsilon(self, delta: float) -> float:
        """The RDP accountant's epsilon so far (inf without noise)."""
        if self.engine is None or self.noise_multiplier == 0:
            return math.inf
        return float(self.engine.get_epsilon(delta))

    def releases(self) -> int:
        """Noisy gradient releases so far (the accountant's steps)."""
        return 0 if self.engine is None else sum(n for _, _, n in self.engine.accountant.history)


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


def _noise_for(conf: dict, delta: float, sample_rate: float, steps: int, releases: int) -> float | None:
    """The noise multiplier of a clipped configuration (None: calibrated by make_private_with_epsilon)."""
    if conf["algorithm"] == "sam_clip":
        return 0.0
    if "noise_multiplier" in conf:
        return float(conf["noise_multiplier"])
    target = float(conf["target_epsilon"])
    if math.isinf(target):
        return 0.0
    if releases == 1:
        return None
    return float(get_noise_multiplier(target_epsilon=target, target_delta=delta, sample_rate=sample_rate, steps=steps))


def make_private(
    model: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader, conf: dict, delta: float
) -> tuple[nn.Module, torch.optim.Optimizer, DataLoader, Privacy]:
    """Wrap a clipped configuration's model, optimizer and loader with Opacus (Poisson sampling, RDP)."""
    releases = 2 if conf["algorithm"] in SAM else 1
    sample_rate = 1.0 / len(loader)
    noise = _noise_for(conf, delta, sample_rate, releases * conf["epochs"] * len(loader), releases)
    engine = PrivacyEngine(accountant="rdp")
    common = {"module": model, "optimizer": optimizer, "data_loader": loader, "max_grad_norm": conf["max_grad_norm"]}
    if noise is None:
        model, optimizer, loader = engine.make_private_with_epsilon(
            **common, target_epsilon=float(conf["target_epsilon"]), target_delta=delta, epochs=conf["epochs"]
        )
        noise = float(optimizer.noise_multiplier)  # type: ignore[attr-defined]
    else:
        model, optimizer, loader = engine.make_private(**common, noise_multiplier=noise, poisson_sampling=True)
    return model, optimizer, loader, Privacy(noise, sample_rate, releases, engine)


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
            model, optimizer, loader, privacy = make_private(model, optimizer, loader, conf, delta)
        params = [p for p in model.parameters() if p.requires_grad]
        loss_fn = nn.CrossEntropyLoss()
        on_epoch(0, model, privacy)
        for epoch in range(1, conf["epochs"] + 1):
            for group in optimizer.param_groups:  # lr step decay ([DG]); constant: factor 1
                group["lr"] = conf["lr"] * lr_factor(conf.get("lr_schedule", "constant"), epoch, conf["epochs"])
            model.train()
            for xb, yb in loader:
                if conf["algorithm"] in SAM:

                    def batch_loss(xb: torch.Tensor = xb, yb: torch.Tensor = yb) -> torch.Tensor:
                        return loss_fn(model(xb), yb)

                    sam_step(params, optimizer, batch_loss, conf["rho"])
                else:
                    optimizer.zero_grad()
                    loss_fn(model(xb), yb).backward()
                    optimizer.step()
            on_epoch(epoch, model, privacy)
