"""Per-example losses and logit-scaled confidences of stacked models on inputs shared by all of them."""

from __future__ import annotations

import numpy as np
import torch

from ..train.models import Model, unflatten


def logit_confidence(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """ln(p_y / (1 - p_y)) per example (M, B), computed from logits without forming p_y:
    z for class 1 and -z for class 0 of a binary model, z_y - logsumexp(other logits) otherwise."""
    z = logits.double()
    if z.ndim == 2:
        return z * (2.0 * y.to(z.dtype) - 1.0)
    own = z.gather(-1, y.expand(z.shape[:-1]).unsqueeze(-1)).squeeze(-1)
    others = z.scatter(-1, y.expand(z.shape[:-1]).unsqueeze(-1), float("-inf"))
    return own - torch.logsumexp(others, dim=-1)


MIN_EVAL_ROWS = 64
"""Rows a model chunk must be able to evaluate at once: fewer models per chunk, not fewer rows, below it."""


def eval_rows_per_chunk(model: Model, n_models: int, budget_mb: int, itemsize: int) -> int:
    """Rows evaluated at once so that the activations of `n_models` models fit `budget_mb`."""
    return max(16, int(budget_mb * 2**20 // (itemsize * model.eval_activation_size() * max(n_models, 1))))


def models_per_chunk(model: Model, n_models: int, n_params: int, budget_mb: int, itemsize: int) -> int:
    """Models evaluated together so that their parameters and the activations of MIN_EVAL_ROWS rows each fit
    `budget_mb` (at least one model; the row chunk is then sized from this chunk's real model count)."""
    per_model = itemsize * (n_params + model.eval_activation_size() * MIN_EVAL_ROWS)
    return max(1, min(n_models, int(budget_mb * 2**20 // per_model)))


@torch.no_grad()
def example_outputs(
    model: Model,
    weights: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    device: torch.device,
    dtype: torch.dtype,
    budget_mb: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Losses and logit-scaled confidences (M, n) as float32 of the models whose flat weights are the
    rows of `weights` (M, P), on the examples (x, y), evaluated in chunks of models and of rows that fit
    `budget_mb` (each model's outputs do not depend on the chunking)."""
    if len(x) == 0:
        empty = np.zeros((len(weights), 0), dtype=np.float32)
        return empty, empty.copy()
    x_t = torch.as_tensor(x, dtype=dtype, device=device)
    y_t = torch.as_tensor(y, dtype=torch.int64, device=device)
    itemsize = x_t.element_size()
    per_chunk = models_per_chunk(model, len(weights), weights.shape[1], budget_mb, itemsize)
    loss_parts, confidence_parts = [], []
    for first in range(0, len(weights), per_chunk):
        chunk = weights[first : first + per_chunk]
        params = unflatten(model, torch.tensor(chunk, dtype=dtype, device=device))
        rows = eval_rows_per_chunk(model, len(chunk), budget_mb, itemsize)
        losses, confidences = [], []
        for start in range(0, len(x_t), rows):
            logits = model.logits(params, x_t[start : start + rows], shared=True)
            yb = y_t[start : start + rows]
            losses.append(model.example_losses(logits, yb).float().cpu())
            confidences.append(logit_confidence(logits, yb).float().cpu())
        loss_parts.append(torch.cat(losses, dim=1))
        confidence_parts.append(torch.cat(confidences, dim=1))
    return torch.cat(loss_parts).numpy(), torch.cat(confidence_parts).numpy()
