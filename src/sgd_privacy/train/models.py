"""Models of docs/methods.md, section 3, written for M models at once over stacked parameters.

Parameters are lists of tensors with a leading model axis. Inputs are either shared by
all models (B, ...) or per model (M, B, ...). Dense layers use batched matmuls and the
CNN uses grouped convolutions, so every model's arithmetic is independent of the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..rng import Purpose, uniform
from . import exact


@dataclass(frozen=True)
class ParamSpec:
    """One parameter tensor: its per-model shape and Glorot fans (bias tensors start at zero)."""

    name: str
    shape: tuple[int, ...]
    fan_in: int
    fan_out: int
    bias: bool

    @property
    def size(self) -> int:
        """Number of scalars in one model's tensor."""
        return math.prod(self.shape)


def _matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per-model x (M, B, i) @ w (M, i, o). A single output column goes through an explicit
    multiply-and-sum: batched matmul would take a matrix-vector path whose summation order
    depends on how many models share the call."""
    if w.shape[2] == 1:
        return (x * w.transpose(1, 2)).sum(dim=2, keepdim=True)
    return torch.bmm(x, w)


def _batch_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum (M, B, o) over B as an innermost contiguous reduction (per-model order fixed)."""
    return t.transpose(1, 2).contiguous().sum(dim=2)


class _Dense(torch.autograd.Function):
    """Per-model affine map whose backward reduces over the batch in a grouping-independent order.

    Autograd's own backward of a broadcast bias (or of a one-column product) sums over a
    middle axis with a kernel chosen by the tensor's shape, so a run's gradient would change
    in the last bits with the number of models trained beside it.
    """

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return _matmul(x, w) + b.unsqueeze(1)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # noqa: ANN001
        x, w, _ = inputs
        ctx.save_for_backward(x, w)

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # noqa: ANN001, ANN205
        x, w = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = g * w.transpose(1, 2) if w.shape[2] == 1 else torch.bmm(g, w.transpose(1, 2))
        if ctx.needs_input_grad[1]:
            if w.shape[2] == 1:
                grad_w = (x.transpose(1, 2) * g.transpose(1, 2)).sum(dim=2, keepdim=True)
            else:
                grad_w = torch.bmm(x.transpose(1, 2), g)
        if ctx.needs_input_grad[2]:
            grad_b = _batch_sum(g)
        return grad_x, grad_w, grad_b


def dense(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, shared: bool) -> torch.Tensor:
    """Per-model affine map: x (B, i) shared by all models, or (M, B, i); w (M, i, o); b (M, o) -> (M, B, o)."""
    if shared:  # evaluation only: one large product over all models
        return torch.einsum("bi,mio->mbo", x, w) + b.unsqueeze(1)
    return _Dense.apply(x, w, b)


def conv3x3(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, shared: bool) -> torch.Tensor:
    """Per-model 'same' 3x3 convolution for evaluation: x (B, C, H, W) shared or (B, M*C, H, W);
    w (M, O, C, 3, 3) -> (B, M*O, H, W). Grouped convolution is fast but its arithmetic depends on M."""
    m, o = w.shape[:2]
    return F.conv2d(x, w.reshape(m * o, *w.shape[2:]), b.reshape(m * o), padding=1, groups=1 if shared else m)


def conv3x3_exact(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-model 'same' 3x3 convolution for training, as unfold + per-model product so that a
    model's arithmetic does not depend on the others: x (M, B, C, H, W) -> (M, B, O, H, W)."""
    m, bsz, c, h, wd = x.shape
    o = w.shape[1]
    cols = F.unfold(x.reshape(m * bsz, c, h, wd), 3, padding=1)  # (M*B, C*9, H*W)
    cols = cols.reshape(m, bsz, c * 9, h * wd).transpose(2, 3).reshape(m, bsz * h * wd, c * 9)
    out = _Dense.apply(cols, w.reshape(m, o, c * 9).transpose(1, 2), b)  # (M, B*H*W, O)
    return out.reshape(m, bsz, h, wd, o).permute(0, 1, 4, 2, 3)


def pool2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling of (M, B, C, H, W)."""
    m, bsz = x.shape[:2]
    out = F.max_pool2d(x.reshape(m * bsz, *x.shape[2:]), 2)
    return out.reshape(m, bsz, *out.shape[1:])


class Model:
    """Base class: parameter layout, initialisation, loss and accuracy for stacked models."""

    specs: tuple[ParamSpec, ...]
    n_classes: int
    dropout: float = 0.0

    @property
    def n_params(self) -> int:
        """Scalars per model."""
        return sum(s.size for s in self.specs)

    def activation_size(self) -> int:
        """Floats of activations per example per model in a training step (for memory budgeting)."""
        raise NotImplementedError

    def eval_activation_size(self) -> int:
        """Floats of activations per example per model in evaluation."""
        return self.activation_size()

    def logits(
        self, params: list[torch.Tensor], x: torch.Tensor, shared: bool, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (M, B) for binary models, (M, B, K) otherwise."""
        raise NotImplementedError

    def dropout_units(self) -> int:
        """Units per example that dropout masks (0: no dropout)."""
        return 0

    def example_losses(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example loss (M, B); y is (B,) shared or (M, B)."""
        if self.n_classes == 2:
            target = y.to(logits.dtype).expand_as(logits)
            return F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        m, b, k = logits.shape
        target = y.expand(m, b).reshape(-1)
        return F.cross_entropy(logits.reshape(m * b, k), target, reduction="none").reshape(m, b)

    def logit_grad(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Gradient of each model's mean batch loss with respect to its logits (position-independent)."""
        if self.n_classes == 2:
            return (exact.sigmoid(logits) - y.to(logits.dtype)) / logits.shape[1]
        onehot = F.one_hot(y, self.n_classes).to(logits.dtype)
        return (exact.softmax(logits) - onehot) / logits.shape[1]

    def correct(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-example correctness (M, B) as the logits' dtype."""
        pred = (logits > 0).long() if self.n_classes == 2 else logits.argmax(-1)
        return (pred == y).to(logits.dtype)

    def init(self, seeds: torch.Tensor, purpose: int, dtype: torch.dtype) -> list[torch.Tensor]:
        """Glorot-uniform weights and zero biases, one draw per seed (a pure function of the seed)."""
        out = []
        for k, spec in enumerate(self.specs):
            if spec.bias:
                out.append(torch.zeros(len(seeds), *spec.shape, dtype=dtype, device=seeds.device))
                continue
            limit = math.sqrt(6.0 / (spec.fan_in + spec.fan_out))
            idx = torch.arange(spec.size, device=seeds.device).reshape(1, -1)
            u = uniform(seeds.reshape(-1, 1), purpose, k, idx, torch.float64)
            out.append(((2.0 * u - 1.0) * limit).to(dtype).reshape(len(seeds), *spec.shape))
        return out


def flatten(params: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate stacked parameters into (M, P) in spec order."""
    return torch.cat([p.reshape(p.shape[0], -1) for p in params], dim=1)


def unflatten(model: Model, flat: torch.Tensor) -> list[torch.Tensor]:
    """Inverse of `flatten` for (M, P) tensors."""
    out, start = [], 0
    for spec in model.specs:
        out.append(flat[:, start : start + spec.size].reshape(flat.shape[0], *spec.shape))
        start += spec.size
    return out


class LogReg(Model):
    """Logistic regression: one dense unit with sigmoid (d + 1 parameters)."""

    def __init__(self, d: int) -> None:
        self.d, self.n_classes = d, 2
        self.specs = (ParamSpec("w", (d, 1), d, 1, False), ParamSpec("b", (1,), d, 1, True))

    def activation_size(self) -> int:
        """Floats of activations per example per model in a training step."""
        return self.d + 4

    def logits(
        self, params: list[torch.Tensor], x: torch.Tensor, shared: bool, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (M, B)."""
        return dense(x, params[0], params[1], shared).squeeze(-1)


class MLP(Model):
    """dense(h, relu) -> dropout(p) -> dense(1, sigmoid)."""

    def __init__(self, d: int, hidden: int, dropout: float) -> None:
        self.d, self.hidden, self.dropout, self.n_classes = d, hidden, dropout, 2
        self.specs = (
            ParamSpec("w1", (d, hidden), d, hidden, False),
            ParamSpec("b1", (hidden,), d, hidden, True),
            ParamSpec("w2", (hidden, 1), hidden, 1, False),
            ParamSpec("b2", (1,), hidden, 1, True),
        )

    def activation_size(self) -> int:
        """Floats of activations per example per model in a training step."""
        return self.d + 4 * self.hidden + 4

    def dropout_units(self) -> int:
        """Hidden units that dropout masks (0 without dropout)."""
        return self.hidden if self.dropout > 0 else 0

    def logits(
        self, params: list[torch.Tensor], x: torch.Tensor, shared: bool, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (M, B); `keep` holds the dropout multipliers of a training step."""
        h = torch.relu(dense(x, params[0], params[1], shared))
        if keep is not None:
            h = h * keep
        return dense(h, params[2], params[3], False).squeeze(-1)


class CNN(Model):
    """conv(s) conv(s) pool conv(2s) conv(2s) pool flatten dense(2s) dense(K); 'same' padding."""

    def __init__(self, in_shape: tuple[int, int, int], size: int, n_classes: int) -> None:
        c, h, w = in_shape
        if h % 4 or w % 4:
            raise ValueError(f"CNN input height and width must be multiples of 4, got {h}x{w}")
        self.in_shape, self.size, self.n_classes = in_shape, size, n_classes
        s, s2, flat = size, 2 * size, 2 * size * (h // 4) * (w // 4)
        self.specs = (
            ParamSpec("conv1", (s, c, 3, 3), 9 * c, 9 * s, False),
            ParamSpec("conv1_b", (s,), 0, 0, True),
            ParamSpec("conv2", (s, s, 3, 3), 9 * s, 9 * s, False),
            ParamSpec("conv2_b", (s,), 0, 0, True),
            ParamSpec("conv3", (s2, s, 3, 3), 9 * s, 9 * s2, False),
            ParamSpec("conv3_b", (s2,), 0, 0, True),
            ParamSpec("conv4", (s2, s2, 3, 3), 9 * s2, 9 * s2, False),
            ParamSpec("conv4_b", (s2,), 0, 0, True),
            ParamSpec("dense1", (flat, s2), flat, s2, False),
            ParamSpec("dense1_b", (s2,), 0, 0, True),
            ParamSpec("dense2", (s2, n_classes), s2, n_classes, False),
            ParamSpec("dense2_b", (n_classes,), 0, 0, True),
        )

    def activation_size(self) -> int:
        """Floats of activations per example per model in a training step (im2col buffers included)."""
        c, h, w = self.in_shape
        s = self.size
        im2col = 9 * h * w * (c + s) + 9 * h * w * (s + 2 * s) // 4
        return 2 * im2col + self.eval_activation_size()

    def eval_activation_size(self) -> int:
        """Floats of activations per example per model in evaluation."""
        c, h, w = self.in_shape
        return 4 * h * w * (c + 2 * self.size)

    def logits(
        self, params: list[torch.Tensor], x: torch.Tensor, shared: bool, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (M, B, K): grouped convolutions on shared inputs, the exact per-model path otherwise."""
        if shared:
            return self._logits_grouped(params, x)
        h = torch.relu(conv3x3_exact(x, params[0], params[1]))
        h = pool2(torch.relu(conv3x3_exact(h, params[2], params[3])))
        h = torch.relu(conv3x3_exact(h, params[4], params[5]))
        h = pool2(torch.relu(conv3x3_exact(h, params[6], params[7])))
        h = h.reshape(h.shape[0], h.shape[1], -1)  # (M, B, C*H*W), PyTorch flatten order
        h = torch.relu(dense(h, params[8], params[9], False))
        return dense(h, params[10], params[11], False)

    def _logits_grouped(self, params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Evaluation on inputs shared by all models, with grouped convolutions."""
        m = params[0].shape[0]
        h = torch.relu(conv3x3(x, params[0], params[1], True))
        h = F.max_pool2d(torch.relu(conv3x3(h, params[2], params[3], False)), 2)
        h = torch.relu(conv3x3(h, params[4], params[5], False))
        h = F.max_pool2d(torch.relu(conv3x3(h, params[6], params[7], False)), 2)
        h = h.reshape(h.shape[0], m, -1).transpose(0, 1)  # (M, B, C*H*W)
        h = torch.relu(dense(h, params[8], params[9], False))
        return dense(h, params[10], params[11], False)


def build_model(
    model: str, x_shape: tuple[int, ...], n_classes: int, hidden: int = 10, dropout: float = 0.2, cnn_size: int = 16
) -> Model:
    """The model named in the config for inputs of per-example shape `x_shape`."""
    if model == "cnn":
        if len(x_shape) != 3:
            raise ValueError(f"model 'cnn' needs image inputs (C, H, W), the dataset has shape {x_shape}")
        c, h, w = x_shape
        return CNN((c, h, w), cnn_size, n_classes)
    if len(x_shape) != 1:
        raise ValueError(f"model {model!r} needs feature vectors, the dataset has shape {x_shape}; use model 'cnn'")
    if n_classes != 2:
        raise ValueError(f"model {model!r} is binary, the dataset has {n_classes} classes")
    if model == "logreg":
        return LogReg(x_shape[0])
    if model == "mlp":
        return MLP(x_shape[0], hidden, dropout)
    raise ValueError(f"unknown model {model!r}; expected logreg, mlp or cnn")


def dropout_keep(
    seeds: torch.Tensor, step: int, batch: int, units: int, rate: float, dtype: torch.dtype
) -> torch.Tensor:
    """Inverted-dropout multipliers (M, batch, units) for one step: 0 or 1/(1-rate), drawn from each seed."""
    idx = torch.arange(batch * units, device=seeds.device).reshape(1, -1)
    u = uniform(seeds.reshape(-1, 1), Purpose.DROPOUT, step, idx, torch.float64)
    keep = (u >= rate).to(dtype) / (1.0 - rate)
    return keep.reshape(len(seeds), batch, units)
