"""The plain reference trainer: one model, an ordinary nn.Module and torch.optim.SGD loop.

It draws the same random numbers as the batched trainer (same counter-based streams) but
shares none of its batching code: D_i is materialised with `neighbour_index`, layers are
torch.nn modules, and metrics are computed directly on D_i. Tests compare the two.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.neighbours import neighbour_index
from ..rng import Purpose, permutation
from .batched import Schedule, TrainResult
from .models import CNN, CONV_PARAMS, MLP, LogReg, Model, dropout_keep

# Each model's dense layers as (weight, bias) parameter names, in order.
DENSE_PARAMS: dict[type, tuple[tuple[str, str], ...]] = {
    LogReg: (("w", "b"),),
    MLP: (("w1", "b1"), ("w2", "b2")),
    CNN: (("dense1", "dense1_b"), ("dense2", "dense2_b")),
}


class _Net(nn.Module):
    """torch.nn version of a Model, loaded from one model's stacked parameters."""

    def __init__(self, model: Model, params: list[torch.Tensor]) -> None:
        super().__init__()
        self.model = model
        p = {spec.name: q.detach().clone() for spec, q in zip(model.specs, params, strict=True)}
        self.convs = nn.ModuleList()
        for name in CONV_PARAMS[::2] if isinstance(model, CNN) else ():
            w = p[name]
            conv = nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
            conv.weight, conv.bias = nn.Parameter(w), nn.Parameter(p[f"{name}_b"])
            self.convs.append(conv)
        self.denses = nn.ModuleList()
        for name, bias in DENSE_PARAMS[type(model)]:
            w = p[name]
            lin = nn.Linear(w.shape[0], w.shape[1])
            lin.weight.data, lin.bias.data = w.T.contiguous(), p[bias]
            self.denses.append(lin)

    def forward(self, x: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(self.model, CNN):
            x = F.relu(self.convs[0](x))
            x = F.max_pool2d(F.relu(self.convs[1](x)), 2)
            x = F.relu(self.convs[2](x))
            x = F.max_pool2d(F.relu(self.convs[3](x)), 2)
            x = torch.flatten(x, 1)
            return self.denses[1](F.relu(self.denses[0](x)))
        if isinstance(self.model, MLP):
            h = F.relu(self.denses[0](x))
            if keep is not None:
                h = h * keep
            return self.denses[1](h).squeeze(-1)
        if not isinstance(self.model, LogReg):
            raise TypeError(f"no reference network for {type(self.model).__name__}")
        return self.denses[0](x).squeeze(-1)

    def flat(self) -> torch.Tensor:
        """Parameters in the batched trainer's flattening order."""
        parts: list[torch.Tensor] = []
        for layer in [*self.convs, *self.denses]:
            if not isinstance(layer, nn.Conv2d | nn.Linear) or layer.bias is None:
                raise TypeError(f"unexpected layer {layer!r}")
            weight = layer.weight.T if isinstance(layer, nn.Linear) else layer.weight  # Linear stores (out, in)
            parts += [weight.reshape(-1), layer.bias]
        return torch.cat(parts).detach()

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.model.n_classes == 2:
            return F.binary_cross_entropy_with_logits(logits, y.to(logits.dtype), reduction="none")
        return F.cross_entropy(logits, y, reduction="none")

    def correct(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        pred = (logits > 0).long() if self.model.n_classes == 2 else logits.argmax(-1)
        return (pred == y).double()


def train_reference(
    model: Model,
    arrays: dict[str, np.ndarray],
    seed: int,
    replace_index: int,
    schedule: Schedule,
    fixed_init: list[torch.Tensor] | None = None,
    dtype: torch.dtype = torch.float64,
) -> TrainResult:
    """Train one run (seed, replace index, init) in an eager loop and log it like the batched trainer."""
    x_all = torch.as_tensor(arrays["x_train"], dtype=dtype)
    y_all = torch.as_tensor(arrays["y_train"], dtype=torch.int64)
    idx = torch.from_numpy(neighbour_index(len(x_all), replace_index))
    x, y = x_all[idx], y_all[idx]
    x_val = torch.as_tensor(arrays["x_val"], dtype=dtype)
    y_val = torch.as_tensor(arrays["y_val"], dtype=torch.int64)
    seed_t = torch.tensor([seed])
    init = fixed_init if fixed_init is not None else model.init(seed_t, Purpose.INIT, dtype)
    net = _Net(model, [p[0].to(dtype) for p in init])
    opt = torch.optim.SGD(net.parameters(), lr=schedule.lr)
    steps, wsteps = schedule.log_steps(len(x)), schedule.weight_steps(len(x))
    metrics: dict[str, list[float]] = {k: [] for k in ("train_loss", "train_acc", "val_loss", "val_acc")}
    weights = []
    spe, b = schedule.steps_per_epoch(len(x)), schedule.batch_size
    units = model.dropout_units()

    def record(t: int) -> None:
        with torch.no_grad():
            for split, (xs, ys) in (("train", (x, y)), ("val", (x_val, y_val))):
                logits = net(xs)
                metrics[f"{split}_loss"].append(float(net.loss(logits, ys).mean()))
                metrics[f"{split}_acc"].append(float(net.correct(logits, ys).mean()))
            if t in wsteps:
                weights.append(net.flat().numpy())

    t = 0
    for epoch in range(schedule.epochs):
        perm = permutation(seed, Purpose.PERMUTATION, epoch, len(x))
        for s in range(spe):
            if t in steps:
                record(t)
            batch = perm[s * b : (s + 1) * b]
            keep = dropout_keep(seed_t, t, b, units, model.dropout, dtype)[0] if units else None
            opt.zero_grad()
            net.loss(net(x[batch], keep), y[batch]).mean().backward()
            opt.step()
            t += 1
    if t in steps:
        record(t)
    diverged = not all(np.isfinite(v).all() for v in metrics.values()) or not np.isfinite(np.array(weights)).all()
    return TrainResult(
        steps, wsteps, np.array(weights)[None], {k: np.array(v)[None] for k, v in metrics.items()}, np.array([diverged])
    )
