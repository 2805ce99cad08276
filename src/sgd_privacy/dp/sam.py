"""Sharpness-aware minimisation (Foret et al.) on top of any torch optimizer, Opacus's DPOptimizer included.

One SAM step: the gradient g at w gives the ascent e = rho g / ||g|| (global L2 norm over all
trainable parameters); the gradient at w + e is then applied at w by the base optimizer.
With a DPOptimizer both gradients are clipped per example and noised (DP-SAM): the ascent
direction is a released, private gradient, so each SAM step is two noisy releases of the same
Poisson batch. Each release calls the optimizer's step hook; `accounting.BatchAccountant` books
the pair as one sampled Gaussian step at sigma / sqrt(2).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from opacus.optimizers import DPOptimizer
from torch import nn


def sam_perturbation(grads: list[torch.Tensor], rho: float) -> list[torch.Tensor]:
    """e = rho * g / ||g|| over the concatenation of `grads` (zeros when g = 0)."""
    norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))
    scale = rho / norm if norm > 0 else 0.0
    return [g * scale for g in grads]


def _gradients(params: list[nn.Parameter]) -> list[torch.Tensor]:
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]


def sam_step(
    params: list[nn.Parameter], optimizer: torch.optim.Optimizer, batch_loss: Callable[[], torch.Tensor], rho: float
) -> float:
    """One SAM update of `params` through `optimizer`; `batch_loss` evaluates the batch loss at the current
    weights. Returns the loss at w (before the step)."""
    optimizer.zero_grad()
    loss = batch_loss()
    loss.backward()
    if isinstance(optimizer, DPOptimizer):
        optimizer.pre_step()  # clip and noise the ascent gradient (the step hook sees this release)
    e = sam_perturbation(_gradients(params), rho)
    with torch.no_grad():
        for p, d in zip(params, e, strict=True):
            p.add_(d)
    optimizer.zero_grad()
    batch_loss().backward()
    with torch.no_grad():
        for p, d in zip(params, e, strict=True):
            p.sub_(d)
    optimizer.step()
    return float(loss.detach())
