"""Privacy accounting of the DP study's Opacus runs: one sampled Gaussian mechanism per Poisson batch.

A batch of DP-SGD is one noisy release of the clipped gradient sum (sensitivity C, noise sigma C).
A batch of DP-SAM is two adaptive releases of the same Poisson batch (the ascent gradient, then the
descent gradient at the perturbed weights), each of sensitivity C and noise sigma C. Composed, k
adaptive Gaussian releases of sensitivity C with noise sigma C are exactly one Gaussian release at
noise multiplier sigma / sqrt(k) (their privacy-loss distributions, and so their RDP curves,
alpha k / (2 sigma^2), coincide); the batch is drawn once, so the whole step is one subsampled
Gaussian mechanism at sigma / sqrt(k) and sampling rate q. Booking the k releases as k independent
subsampled steps at sigma (as if each drew its own batch) understates epsilon: Poisson subsampling
amplifies each mechanism once, not k times.

All epsilons come from Opacus's RDP accountant (its `compute_rdp` / `get_privacy_spent`); nothing
here writes an RDP formula.
"""

from __future__ import annotations

import math

from opacus.accountants import IAccountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.optimizers import DPOptimizer

from ..errors import ConfigError


def effective_noise_multiplier(noise_multiplier: float, releases: int) -> float:
    """The noise multiplier of one sampled Gaussian step equal to `releases` Gaussian releases of one batch."""
    if releases < 1:
        raise ValueError(f"releases per step must be at least 1, got {releases}")
    return noise_multiplier / math.sqrt(releases)


def calibrated_noise_multiplier(
    target_epsilon: float, delta: float, sample_rate: float, steps: int, releases: int, name: str = ""
) -> float:
    """The per-release noise multiplier whose run (`steps` batches of `releases` releases each) spends
    `target_epsilon` at `delta` (Opacus's RDP search, within its tolerance 0.01 below the target)."""
    try:
        effective = get_noise_multiplier(
            target_epsilon=target_epsilon, target_delta=delta, sample_rate=sample_rate, steps=steps, accountant="rdp"
        )
    except ValueError as exc:  # Opacus: "The privacy budget is too low."
        raise ConfigError(
            f"config key 'dp' configuration {name!r}: target_epsilon {target_epsilon} at delta {delta} cannot be "
            f"reached in {steps} steps at sampling rate {sample_rate:.4g} ({exc}); raise target_epsilon or lower "
            "epochs"
        ) from exc
    return float(effective) / effective_noise_multiplier(1.0, releases)  # the inverse of the booking's sigma


class BatchAccountant:
    """A DPOptimizer step hook that books each batch once: `releases` consecutive noisy releases (one
    batch's) are one sampled Gaussian step at sigma / sqrt(releases), booked at the batch's first release
    (so the accountant never lags a release). It also counts the releases themselves."""

    def __init__(self, accountant: IAccountant, sample_rate: float, releases: int) -> None:
        """Book into `accountant` at `sample_rate`, `releases` noisy releases per batch."""
        self.accountant = accountant
        self.sample_rate = sample_rate
        self.releases_per_step = releases
        self.releases = 0

    def __call__(self, optimizer: DPOptimizer) -> None:
        """Called by Opacus after every noisy release (clip, noise, scale) of `optimizer`."""
        if self.releases % self.releases_per_step == 0:
            noise = effective_noise_multiplier(optimizer.noise_multiplier, self.releases_per_step)
            self.accountant.step(noise_multiplier=noise, sample_rate=self.sample_rate)
        self.releases += 1

    def steps(self) -> int:
        """Batches booked so far."""
        return sum(int(n) for _, _, n in self.accountant.history)

    def check(self) -> None:
        """Raise RuntimeError unless every booked batch made exactly its releases (a SAM step half done)."""
        if self.releases != self.steps() * self.releases_per_step:
            raise RuntimeError(
                f"privacy accounting out of step: {self.releases} noisy releases for {self.steps()} booked batches "
                f"of {self.releases_per_step} releases each"
            )
