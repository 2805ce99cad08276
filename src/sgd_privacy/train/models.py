"""Models of docs/methods.md, section 3, written for M models at once over stacked parameters.

Parameters are lists of tensors with a leading model axis. Inputs are either shared by
all models (B, ...) or per model (M, B, ...). Dense layers use batched matmuls and the
CNN trains with each model's convolutions computed on its own, on one thread (exact path,
`convstack`), or one grouped convolution per layer for all models (fast path).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError, TrainingError
from ..rng import Purpose, uniform
from . import exact
from .convstack import cnn_features
from .shared import (
    LabelledRows,
    SharedBatch,
    batch_sum,
    chunked_totals,
    fixed_bmm,
    rows_weight_grad,
    run_diagonal_product,
    shared_forward,
    shared_weight_grad,
)


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
            grad_b = batch_sum(g)
        return grad_x, grad_w, grad_b


def dense(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, shared: bool) -> torch.Tensor:
    """Per-model affine map: x (B, i) shared by all models, or (M, B, i); w (M, i, o); b (M, o) -> (M, B, o)."""
    if shared:  # evaluation only: one large product over all models
        return torch.einsum("bi,mio->mbo", x, w) + b.unsqueeze(1)
    return _Dense.apply(x, w, b)


CONV_PATHS = ("auto", "exact", "fast")


def _conv_flags() -> contextlib.AbstractContextManager:
    """cuDNN settings of the fast path: deterministic algorithms (bit-identical reruns of one
    shard) and full float32 precision (no TF32), so results agree with the exact path to rounding."""
    return torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True, allow_tf32=False)


class _GroupedConv(torch.autograd.Function):
    """'same' 3x3 convolution with `groups` groups whose forward and backward both run under `_conv_flags`."""

    @staticmethod
    def forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, groups: int) -> torch.Tensor:
        with _conv_flags():
            return F.conv2d(x, w, b, padding=1, groups=groups)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # noqa: ANN001
        x, w, _, groups = inputs
        ctx.groups = groups
        ctx.save_for_backward(x, w)

    @staticmethod
    def backward(ctx, g: torch.Tensor):  # noqa: ANN001, ANN205
        x, w = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2]]
        with _conv_flags():
            gx, gw, gb = torch.ops.aten.convolution_backward(
                g, x, w, [w.shape[0]], [1, 1], [1, 1], [1, 1], False, [0, 0], ctx.groups, mask
            )
        return gx, gw, gb, None


def conv3x3(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, shared: bool) -> torch.Tensor:
    """Per-model 'same' 3x3 convolution as one grouped convolution (the fast path): x (B, C, H, W)
    shared or (B, M*C, H, W); w (M, O, C, 3, 3) -> (B, M*O, H, W). Fast and light (cuDNN on a GPU),
    but the kernel sees all M models at once, so a model's last bits may depend on M."""
    m, o = w.shape[:2]
    return _GroupedConv.apply(x, w.reshape(m * o, *w.shape[2:]), b.reshape(m * o), 1 if shared else m)


class Model:
    """Base class: parameter layout, initialisation, loss and accuracy for stacked models."""

    specs: tuple[ParamSpec, ...]
    n_classes: int
    dropout: float = 0.0

    def named(self, params: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The stacked parameter tensors by their spec names (e.g. "w", "conv1_b", "dense2")."""
        return {spec.name: p for spec, p in zip(self.specs, params, strict=True)}

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

    def eval_totals(
        self, params: list[torch.Tensor], rows: LabelledRows, rows_per_chunk: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed loss and correct count (M,) of each model over the prepared rows (dense models)."""
        raise NotImplementedError

    def dropout_units(self) -> int:
        """Units per example that dropout masks (0: no dropout)."""
        return 0

    shares_rows = False  # whether `shared_step` and `eval_totals` exist (the dense models)
    signed_rows = False  # whether `eval_totals` takes `LabelledRows` with label-1 rows negated

    def shared_step(self, slots: list[torch.Tensor], batch: SharedBatch, lr: float) -> None:
        """One SGD step of every run, in place and without autograd, in the seed blocks' layout
        (`sgd_privacy.train.shared`): parameters `slots` (`to_slots`) minus lr times the gradients of
        each run's mean loss over the step's minibatch `batch` (lr multiplies the loss's gradient with
        respect to the logits, before the backward products). Where `compiled_here` (the CPU), the
        step between the forward and the weight-gradient products is one compiled loop
        (`compiled_step`); elsewhere (a GPU) tensor operations (`shared_grads`)."""
        if compiled_here(slots[0]):
            self.compiled_step(slots, batch, lr)
            return
        for p, update in zip(slots, self.shared_grads(slots, batch, lr), strict=True):
            p.sub_(update)

    def compiled_step(self, slots: list[torch.Tensor], batch: SharedBatch, lr: float) -> None:
        """`shared_step` on the CPU, with the compiled loop of `sgd_privacy.train.fused`."""
        raise NotImplementedError

    def shared_grads(self, slots: list[torch.Tensor], batch: SharedBatch, lr: float) -> list[torch.Tensor]:
        """The steps `shared_step` subtracts, as tensor operations (a GPU's path)."""
        raise NotImplementedError

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
        # y == class as a comparison, not F.one_hot, which reads y's min and max on the host (a sync)
        onehot = (y.unsqueeze(-1) == torch.arange(self.n_classes, device=y.device)).to(logits.dtype)
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


def compiled_here(t: torch.Tensor) -> bool:
    """Whether tensors like `t` take the compiled loops of `sgd_privacy.train.fused`: on the CPU, in
    float32 or float64 (a GPU keeps the tensor operations, about one kernel launch each)."""
    return t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64)


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
        p = self.named(params)
        return dense(x, p["w"], p["b"], shared).squeeze(-1)

    shares_rows = signed_rows = True

    def compiled_step(self, slots: list[torch.Tensor], batch: SharedBatch, lr: float) -> None:
        """w and b, together in the blocks' layout, stepped in place (see `Model.shared_step`); the
        compiled loop has the tensor operations' bits (no sum between the products)."""
        wb = slots[0]
        from .fused import logreg_middle  # numba loads with the first dense step, not with this module

        wb.sub_(rows_weight_grad(batch.xs, logreg_middle(fixed_bmm(batch.xs, wb), batch, lr)))

    def shared_grads(self, slots: list[torch.Tensor], batch: SharedBatch, lr: float) -> list[torch.Tensor]:
        """The step of w and b as tensor operations (see `Model.shared_grads`)."""
        logits = shared_forward(batch.xs, slots[0], batch.hit).squeeze(-1)
        g = (lr * self.logit_grad(logits, batch.y)).unsqueeze(-1)  # (n_blocks, B, width, 1)
        return [shared_weight_grad(batch.xs, g, batch.hit)]

    def eval_totals(
        self, params: list[torch.Tensor], rows: LabelledRows, rows_per_chunk: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Margins of all models on a chunk of rows as one product (M, d + 1) @ (d + 1, R) with the
        bias folded in and label-1 rows negated (`signed_totals`)."""
        w, b = params
        wa = torch.cat([w.squeeze(-1), b], dim=1)  # (M, d + 1)
        return chunked_totals(rows, rows_per_chunk, len(wa), wa, lambda lo, hi, positive: wa @ rows.x[lo:hi].T)


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
        p = self.named(params)
        h = torch.relu(dense(x, p["w1"], p["b1"], shared))
        if keep is not None:
            h = h * keep
        return dense(h, p["w2"], p["b2"], False).squeeze(-1)

    shares_rows = True

    def compiled_step(self, slots: list[torch.Tensor], batch: SharedBatch, lr: float) -> None:
        """(w1, b1) together, w2 and b2 in the blocks' layout, stepped in place (see `Model.shared_step`).
        The compiled loop sums the output layer and w2's and b2's steps in index order, the tensor
        operations in their own orders: the two paths agree to rounding, each is deterministic."""
        w1b1, w2, b2 = slots
        from .fused import mlp_middle  # numba loads with the first dense step, not with this module

        ext = mlp_middle(fixed_bmm(batch.xs, w1b1), batch, w2, b2, lr)  # steps w2 and b2
        w1b1.sub_(rows_weight_grad(batch.xs, ext))

    def shared_grads(self, slots: list[torch.Tensor], batch: SharedBatch, lr: float) -> list[torch.Tensor]:
        """Steps of (w1, b1) together, w2 and b2 as tensor operations (see `Model.shared_grads`). ReLU and
        dropout as one multiplier, the gate sign(relu(pre)) x keep (1 where pre > 0, else 0, times keep),
        in the forward and the backward pass; the output layer as products and a sum over the hidden units
        in order; w2's step as `run_diagonal_product`. Every elementwise operation's operands have the
        activations' shape (n_blocks, B, width, h), or are broadcast over the batch axis only: on the
        CPU, operations broadcast over an inner axis or producing booleans run several times slower."""
        w1b1, w2, b2 = slots  # (n_blocks, d + 1, width * h), (n_blocks, width, h, 1), (n_blocks, width, 1)
        keep = batch.run_keep()
        pre = shared_forward(batch.xs, w1b1, batch.hit)  # (n_blocks, B, width, h)
        relu = torch.relu(pre)
        gate, h = torch.sign(relu), relu
        if keep is not None:
            gate, h = gate * keep, h * keep
        w_out = w2.squeeze(-1).unsqueeze(1).expand(pre.shape).contiguous()  # (n_blocks, B, width, h)
        logits = (h * w_out).sum(dim=-1) + b2.squeeze(-1).unsqueeze(1)  # (n_blocks, B, width)
        g = lr * self.logit_grad(logits, batch.y)  # (n_blocks, B, width)
        grad_pre = (g.unsqueeze(-1) * w_out) * gate
        return [
            shared_weight_grad(batch.xs, grad_pre, batch.hit),
            run_diagonal_product(g, h).unsqueeze(-1),
            batch_sum(g).unsqueeze(-1),
        ]

    def eval_totals(
        self, params: list[torch.Tensor], rows: LabelledRows, rows_per_chunk: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden layer of all models on a chunk of rows as one product (M h, d + 1) @ (d + 1, R), the
        output layer as a sum over the h hidden units, negated on label-1 rows (`signed_totals`)."""
        w1, b1, w2, b2 = params
        m, h = w2.shape[0], self.hidden
        w1a = torch.cat([w1.transpose(1, 2), b1.unsqueeze(-1)], dim=2).reshape(m * h, -1)  # (M h, d + 1)
        out = {True: (-w2, -b2), False: (w2, b2)}  # label-1 rows: the negated logit

        def margins(lo: int, hi: int, positive: bool) -> torch.Tensor:
            hidden = torch.relu_(w1a @ rows.x[lo:hi].T).reshape(m, h, hi - lo)
            w_out, b_out = out[positive]
            return (hidden * w_out).sum(dim=1) + b_out

        return chunked_totals(rows, rows_per_chunk, m * h, w1, margins)


# The CNN's convolution weights and biases in layer order (the exact path's `convs` argument).
CONV_PARAMS = ("conv1", "conv1_b", "conv2", "conv2_b", "conv3", "conv3_b", "conv4", "conv4_b")


class CNN(Model):
    """conv(s) conv(s) pool conv(2s) conv(2s) pool flatten dense(2s) dense(K); 'same' padding.

    `conv_path` picks the training convolutions: 'exact' (each model's convolutions on their own,
    single-threaded, so results are bit-identical whatever runs share the batch and whatever the
    thread count), 'fast' (one grouped convolution for all models, equal to 'exact' to rounding)
    or 'auto' (fast on a GPU, exact otherwise).
    """

    def __init__(self, in_shape: tuple[int, int, int], size: int, n_classes: int, conv_path: str = "auto") -> None:
        c, h, w = in_shape
        if h % 4 or w % 4:
            raise TrainingError(f"CNN input height and width must be multiples of 4, got {h}x{w}")
        if conv_path not in CONV_PATHS:
            raise TrainingError(f"unknown conv path {conv_path!r}; expected one of {', '.join(CONV_PATHS)}")
        self.in_shape, self.size, self.n_classes, self.conv_path = in_shape, size, n_classes, conv_path
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
        """Floats of activations per example per model in a training step: both paths keep about
        what the plain network keeps (no im2col buffers), so this equals the evaluation size."""
        return self.eval_activation_size()

    def eval_activation_size(self) -> int:
        """Floats of activations per example per model in evaluation."""
        c, h, w = self.in_shape
        return 4 * h * w * (c + 2 * self.size)

    def path_for(self, device: torch.device) -> str:
        """The convolution path used on `device`: 'auto' is fast on CUDA, exact elsewhere; 'exact' is
        refused on CUDA, where its per-model Python loop would run outside the fast path's
        deterministic, TF32-off cuDNN settings (and at a fraction of its speed)."""
        if self.conv_path == "auto":
            return "fast" if device.type == "cuda" else "exact"
        if self.conv_path == "exact" and device.type == "cuda":
            raise ConfigError(
                "training.conv_path is 'exact', which runs on the CPU only (its bit-identity across groupings "
                "and thread counts is a CPU property; on CUDA it would loop over models outside the "
                "deterministic cuDNN settings); set training.conv_path to 'fast' or 'auto' for a GPU "
                "(equal to 'exact' to float32 rounding), or training.device to 'cpu'"
            )
        return self.conv_path

    def logits(
        self, params: list[torch.Tensor], x: torch.Tensor, shared: bool, keep: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (M, B, K) from grouped convolutions (fast path) or per-model ones (exact path)."""
        if self.path_for(x.device) == "fast":
            return self._logits_grouped(params, x, shared)
        p = self.named(params)
        h = torch.relu(dense(cnn_features(x, [p[n] for n in CONV_PARAMS], shared), p["dense1"], p["dense1_b"], False))
        return dense(h, p["dense2"], p["dense2_b"], False)

    def _logits_grouped(self, params: list[torch.Tensor], x: torch.Tensor, shared: bool) -> torch.Tensor:
        """Grouped convolutions over inputs shared by all models (B, C, H, W) or per model (M, B, C, H, W)."""
        p = self.named(params)
        m = params[0].shape[0]
        if not shared:  # (M, B, C, H, W) -> (B, M*C, H, W): model m owns channels m*C .. (m+1)*C - 1
            x = x.transpose(0, 1).reshape(x.shape[1], m * x.shape[2], *x.shape[3:])
        h = torch.relu(conv3x3(x, p["conv1"], p["conv1_b"], shared))
        h = F.max_pool2d(torch.relu(conv3x3(h, p["conv2"], p["conv2_b"], False)), 2)
        h = torch.relu(conv3x3(h, p["conv3"], p["conv3_b"], False))
        h = F.max_pool2d(torch.relu(conv3x3(h, p["conv4"], p["conv4_b"], False)), 2)
        h = h.reshape(h.shape[0], m, -1).transpose(0, 1)  # (M, B, C*H*W)
        h = torch.relu(dense(h, p["dense1"], p["dense1_b"], False))
        return dense(h, p["dense2"], p["dense2_b"], False)


def build_model(
    model: str,
    x_shape: tuple[int, ...],
    n_classes: int,
    hidden: int | None = None,
    dropout: float | None = None,
    cnn_size: int | None = None,
    conv_path: str = "auto",
) -> Model:
    """The model named in the config for inputs of per-example shape `x_shape` (`conv_path`: see `CNN`);
    the architecture keys have no defaults here (the config schema holds them)."""
    if model == "cnn":
        if cnn_size is None:
            raise TrainingError("model 'cnn' needs cnn_size")
        if len(x_shape) != 3:
            raise TrainingError(f"model 'cnn' needs image inputs (C, H, W), the dataset has shape {x_shape}")
        c, h, w = x_shape
        return CNN((c, h, w), cnn_size, n_classes, conv_path)
    if len(x_shape) != 1:
        raise TrainingError(f"model {model!r} needs feature vectors, the dataset has shape {x_shape}; use model 'cnn'")
    if n_classes != 2:
        raise TrainingError(f"model {model!r} is binary, the dataset has {n_classes} classes")
    if model == "logreg":
        return LogReg(x_shape[0])
    if model == "mlp":
        if hidden is None or dropout is None:
            raise TrainingError("model 'mlp' needs hidden and dropout")
        return MLP(x_shape[0], hidden, dropout)
    raise TrainingError(f"unknown model {model!r}; expected logreg, mlp or cnn")


def dropout_keep(
    seeds: torch.Tensor, step: int | torch.Tensor, batch: int, units: int, rate: float, dtype: torch.dtype
) -> torch.Tensor:
    """Inverted-dropout multipliers (M, batch, units) for one step: 0 or 1/(1-rate), drawn from each seed
    (`step`: the step number, or a 0-d int64 tensor on the seeds' device holding it, which the trainer
    passes so that no Python number is copied to the device each step; both give the same bits)."""
    idx = torch.arange(batch * units, device=seeds.device).reshape(1, -1)
    u = uniform(seeds.reshape(-1, 1), Purpose.DROPOUT, step, idx, torch.float64)
    keep = (u >= rate).to(dtype) / (1.0 - rate)
    return keep.reshape(len(seeds), batch, units)


def dropout_keep_steps(
    seeds: torch.Tensor, steps: torch.Tensor, batch: int, units: int, rate: float, dtype: torch.dtype
) -> torch.Tensor:
    """`dropout_keep` of several steps at once (K, M, batch, units), `steps` (K,) int64 on the seeds'
    device: the same bits as one call per step (the hash is elementwise), in one pass of its ops."""
    idx = torch.arange(batch * units, device=seeds.device).reshape(1, 1, -1)
    u = uniform(seeds.reshape(1, -1, 1), Purpose.DROPOUT, steps.reshape(-1, 1, 1), idx, torch.float64)
    keep = (u >= rate).to(dtype) / (1.0 - rate)
    return keep.reshape(len(steps), len(seeds), batch, units)
