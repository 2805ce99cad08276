"""The CNN's convolution stack on the exact path: each model's forward and backward written out
by hand, models spread over CPU threads that each run single-threaded kernels.

A model's arithmetic is the same kernel calls on the same shapes whatever else is trained: the
other runs of its batch, the chunk size and the job's thread count change nothing in its bits
(multi-threaded oneDNN kernels split the weight-gradient sum by thread, single-threaded ones do not).
Layers: conv(s) relu conv(s) pool relu conv(2s) relu conv(2s) pool relu, 'same' 3x3 convolutions
and 2x2 max pools. ReLU runs after each pool: max and ReLU commute exactly (ReLU is monotone), in
values and in gradients, and the pooled tensor is four times smaller.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch
import torch.nn.functional as F

T = TypeVar("T")
_CL = torch.channels_last
_ONE = [1, 1]


@contextlib.contextmanager
def single_threaded_kernels() -> Iterator[int]:
    """Run torch's CPU kernels on one thread inside the block; yields the thread count it replaced."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)


def map_models(fn: Callable[[int], T], count: int, device: torch.device) -> list[T]:
    """[fn(0), ..., fn(count - 1)]; on the CPU spread over the job's threads, each running
    single-threaded kernels, so every call's arithmetic is the same whichever thread runs it."""
    if device.type != "cpu":
        return [fn(m) for m in range(count)]
    with single_threaded_kernels() as threads:
        if threads == 1 or count == 1:
            return [fn(m) for m in range(count)]
        with ThreadPoolExecutor(min(threads, count), initializer=torch.set_num_threads, initargs=(1,)) as pool:
            return list(pool.map(fn, range(count)))


def _conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """'same' 3x3 convolution."""
    return F.conv2d(x, w, b, padding=1)


def _conv_grads(g: torch.Tensor, x: torch.Tensor, w: torch.Tensor, input_grad: bool) -> tuple[torch.Tensor, ...]:
    """aten's backward of a 'same' 3x3 convolution: (input or None, weight, bias) gradients."""
    return torch.ops.aten.convolution_backward(
        g, x, w, [w.shape[0]], _ONE, _ONE, _ONE, False, [0, 0], 1, [input_grad, True, True]
    )


def _conv_backward(
    g: torch.Tensor, x: torch.Tensor, w: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of a 'same' 3x3 convolution with respect to its input, weight and bias."""
    gx, gw, gb = _conv_grads(g, x, w, True)
    return gx, gw, gb


def _conv_weight_backward(g: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of a 'same' 3x3 convolution with respect to its weight and bias only (first layer)."""
    _, gw, gb = _conv_grads(g, x, w, False)
    return gw, gb


def _pool(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """2x2 max pool and the argmax indices its backward needs."""
    return torch.ops.aten.max_pool2d_with_indices(h, [2, 2])


def _pool_backward(g: torch.Tensor, like: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Gradient of a 2x2 max pool; `like` has the pool input's shape and layout (its values are not read)."""
    return torch.ops.aten.max_pool2d_with_indices_backward(g, like, [2, 2], [2, 2], [0, 0], _ONE, False, indices)


def _relu_backward(g: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """g where the ReLU's output is positive, else 0."""
    return torch.ops.aten.threshold_backward(g, out, 0)


Saved = tuple[torch.Tensor, ...]


@torch.no_grad()  # also in worker threads, where grad mode (thread-local) is on by default
def stack_forward(x: torch.Tensor, convs: Sequence[torch.Tensor], out: torch.Tensor, keep: bool) -> Saved | None:
    """One model: images x (B, C, H, W) -> features written to `out` (B, F) in PyTorch's flatten
    order (C, H, W); returns what `stack_backward` needs when `keep`. Activations are channels-last, the layout
    in which oneDNN's convolutions are fastest for few channels."""
    w1, b1, w2, b2, w3, b3, w4, b4 = convs
    x = x.contiguous(memory_format=_CL)
    a1 = _conv(x, w1, b1).relu_()
    p2, i2 = _pool(_conv(a1, w2, b2))
    p2.relu_()
    a3 = _conv(p2, w3, b3).relu_()
    p4, i4 = _pool(_conv(a3, w4, b4))
    p4.relu_()
    out.view(p4.shape).copy_(p4)
    return (x, a1, i2, p2, a3, i4, p4) if keep else None


@torch.no_grad()
def stack_backward(saved: Saved | None, convs: Sequence[torch.Tensor], g: torch.Tensor) -> list[torch.Tensor]:
    """One model: the gradients of its 8 convolution parameters from the features' gradient g (B, F)."""
    if saved is None:
        raise RuntimeError("stack_backward needs the tensors stack_forward kept (keep=True)")
    x, a1, i2, p2, a3, i4, p4 = saved
    w1, _, w2, _, w3, _, w4, _ = convs
    g4 = _relu_backward(g.reshape(p4.shape).contiguous(memory_format=_CL), p4)
    ga3, gw4, gb4 = _conv_backward(_pool_backward(g4, a3, i4), a3, w4)
    gp2, gw3, gb3 = _conv_backward(_relu_backward(ga3, a3), p2, w3)
    ga1, gw2, gb2 = _conv_backward(_pool_backward(_relu_backward(gp2, p2), a1, i2), a1, w2)
    gw1, gb1 = _conv_weight_backward(_relu_backward(ga1, a1), x, w1)
    return [gw1, gb1, gw2, gb2, gw3, gb3, gw4, gb4]


def feature_size(conv4: torch.Tensor, height: int, width: int) -> int:
    """Features per example: the last convolution's output channels times the twice-pooled image."""
    return conv4.shape[-4] * (height // 4) * (width // 4)


def _forward_all(x: torch.Tensor, convs: Sequence[torch.Tensor], keep: bool) -> tuple[torch.Tensor, list[Saved | None]]:
    """Every model's features (M, B, F) from images (M, B, C, H, W), and what each backward needs when `keep`."""
    m, b = x.shape[:2]
    out = x.new_empty(m, b, feature_size(convs[6], *x.shape[-2:]))
    saved = map_models(lambda k: stack_forward(x[k], [c[k] for c in convs], out[k], keep), m, x.device)
    return out, saved


class _ConvStack(torch.autograd.Function):
    """Every model's convolution stack, forward and backward by hand (`stack_forward`, `stack_backward`)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, *convs: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        out, ctx.saved = _forward_all(x, convs, True)
        ctx.save_for_backward(*convs)  # autograd then refuses a backward after an in-place update
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # noqa: ANN001
        convs, saved = ctx.saved_tensors, ctx.saved
        grads = [torch.empty_like(c, memory_format=torch.contiguous_format) for c in convs]

        def one(k: int) -> None:
            for dest, part in zip(grads, stack_backward(saved[k], [c[k] for c in convs], g[k]), strict=True):
                dest[k].copy_(part)

        map_models(one, g.shape[0], g.device)
        ctx.saved = None
        return (None, *grads)


def cnn_features(x: torch.Tensor, convs: list[torch.Tensor], shared: bool) -> torch.Tensor:
    """Every model's convolution stack: x (B, C, H, W) shared by all models or (M, B, C, H, W);
    convs: the 8 stacked conv parameters (M, ...) -> features (M, B, F)."""
    if shared:  # evaluation: every model reads the same images, converted to channels-last once
        x = x.contiguous(memory_format=_CL).expand(convs[0].shape[0], *x.shape)
    if torch.is_grad_enabled() and any(c.requires_grad for c in convs):
        return _ConvStack.apply(x, *convs)
    return _forward_all(x, convs, False)[0]
