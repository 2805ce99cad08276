"""The dense models' step between its two products, as one compiled loop on the CPU (numba).

The one-minibatch-per-seed step (`sgd_privacy.train.shared`) is a forward product, z = xs @ (w1, b1),
and a weight-gradient product, xs^T @ ext. On the CPU the tensor operations between them (the replaced
rows, ReLU and dropout, the output layer, the exact sigmoid, the loss gradient, the output layer's
steps and the moves to row B: about 40 operations for the MLP, each a pass over memory and a dispatch)
took most of the step's time. Here they are one loop per step (`logreg_middle`, `mlp_middle`):

- a run's row j is row B of its block (x_0) where `hit[n, j, c]`, row j otherwise;
- the gradient lr * ((sigmoid(logit) - y) / B) (`Model.logit_grad` times lr) is `exact.sigmoid`'s
  arithmetic operation for operation in the same order and dtype: exp by Cody-Waite reduction
  (k = round(x / ln 2) half to even, as adding and subtracting 1.5 x 2**mantissa bits rounds), Taylor's
  polynomial by Horner's rule, 2**k built from its exponent bits, then 1 / (1 + exp(-z)), minus the
  label, divided by B, times lr: the tensor operations' bits (tested over both float ranges);
- the MLP's output layer sums its hidden units, and w2's and b2's steps sum the batch rows, in index
  order (the tensor operations sum in their own orders: the two paths agree to rounding);
- ext holds each run's output gradient at its rows, moved to row B at a hit (`shared_weight_grad`).

Determinism (the trainer's contract): a run's arithmetic reads only its own columns and its seed's
rows, in a fixed order, and every operation is a correctly rounded IEEE operation: the loops are
compiled without fast-math (no reassociation, no fused multiply-add), so their vector and scalar lanes
give the same bits wherever a run sits. They run on one thread. A GPU keeps the tensor operations
(`Model.shared_grads`). Numba compiles each loop once per dtype and caches it beside this module (set-up
compiles them: `python -m sgd_privacy.train.fused`).
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numba
import numpy as np
import torch

from .exact import _LN2_HI, _LN2_LO, _SPEC
from .shared import SeedBlocks, SharedBatch


@cache
def constants(dtype: torch.dtype) -> tuple[Any, ...]:
    """`exact.exp`'s constants in `dtype` (numba specialises the loop on their types): Horner's
    coefficients 1/n! from n = degree down to 0, the clamp bound, 1/ln 2, ln 2's two parts, the
    rounding constant 1.5 x 2**mantissa bits, 1, the exponent's bias and shift as integers of the float's
    width, and an empty array of that integer type."""
    degree, bound, mant, bias, _ = _SPEC[dtype]
    f, i = (np.float32, np.int32) if dtype == torch.float32 else (np.float64, np.int64)
    coefs = tuple(f(1.0 / math.factorial(n)) for n in range(degree, -1, -1))
    consts = (f(bound), f(1.0 / math.log(2.0)), f(_LN2_HI), f(_LN2_LO), f(1.5 * 2.0**mant), f(1.0), i(bias), i(mant))
    return (coefs, *consts, np.zeros(0, dtype=i))


@numba.njit(inline="always", fastmath=False, error_model="numpy", boundscheck=False, nogil=True, cache=True)
def _sigmoid_grad_into(z, labels, lr, batch, consts, out):  # noqa: ANN001, ANN202
    """out = lr * ((sigmoid(z) - labels) / batch) over flat arrays (`Model.logit_grad`'s operations)."""
    coefs, bound, inv_ln2, ln2_hi, ln2_lo, magic, one, bias, mant, ints = consts
    bits = np.empty(len(z), dtype=ints.dtype)  # integers of the float's width
    f, i_of = out.dtype.type, ints.dtype.type
    for i in range(len(z)):
        x = -z[i]
        x = -bound if x < -bound else x  # a clamp that keeps NaN
        x = bound if x > bound else x
        k = (x * inv_ln2 + magic) - magic  # round half to even, as torch.round
        r = (x - k * ln2_hi) - k * ln2_lo
        p = coefs[0]
        for c in coefs[1:]:
            p = p * r + c
        out[i] = p
        bits[i] = ((i_of(k) if k == k else i_of(0)) + bias) << mant  # 2**k (|k| <= 126 or 1022 after the clamp)
    scale = bits.view(out.dtype)
    for i in range(len(z)):
        out[i] = lr * (((one / (one + out[i] * scale[i])) - f(labels[i])) / batch)


@numba.njit(fastmath=False, error_model="numpy", boundscheck=False, nogil=True, cache=True)
def _logreg_middle(z, hit, y, lr, batch, consts):  # noqa: ANN001, ANN202
    """Logistic regression between its products: z (nb, B + 1, width) -> ext (nb, B + 1, width)."""
    nb, rows, width = hit.shape
    one = consts[6]
    zero = one - one
    logits = np.empty((nb, rows, width), dtype=z.dtype)
    for n in range(nb):
        for j in range(rows):
            for c in range(width):
                logits[n, j, c] = z[n, rows if hit[n, j, c] else j, c]
    g = np.empty_like(logits)
    _sigmoid_grad_into(logits.reshape(-1), y.reshape(-1), lr, batch, consts, g.reshape(-1))
    ext = np.empty_like(z)
    for n in range(nb):
        for c in range(width):
            ext[n, rows, c] = zero
        for j in range(rows):
            for c in range(width):
                if hit[n, j, c]:  # the run's row here is x_0: its gradient goes to row B
                    ext[n, rows, c] = g[n, j, c]
                    ext[n, j, c] = zero
                else:
                    ext[n, j, c] = g[n, j, c]
    return ext


def logreg_middle(z: torch.Tensor, batch: SharedBatch, lr: float) -> torch.Tensor:
    """Logistic regression's output gradients at the blocks' rows, ext (n_blocks, B + 1, width), from
    the forward product z (n_blocks, B + 1, width): each run's row B where it is x_0 (`batch.hit`), the
    gradient lr * ((sigmoid(logit) - y) / B) with the tensor operations' bits, moved to row B at a hit
    and zeros elsewhere in row B (as `shared_weight_grad` builds it)."""
    consts = constants(z.dtype)
    f = consts[1].dtype.type
    rows = batch.hit.shape[1]
    return torch.from_numpy(_logreg_middle(z.numpy(), batch.hit.numpy(), batch.y.numpy(), f(lr), f(rows), consts))


@numba.njit(fastmath=False, error_model="numpy", boundscheck=False, nogil=True, cache=True)
def _mlp_middle(z, hit, y, keep, block_seed, w2, b2, lr, batch, consts):  # noqa: ANN001, ANN202
    """The MLP between its products: z (nb, B + 1, width * u) -> ext of that shape; w2 (nb, width, u)
    and b2 (nb, width) stepped in place; keep (seeds, B, u), or (0, B, u) without dropout."""
    nb, rows, width = hit.shape
    u = w2.shape[2]
    wu = width * u
    one = consts[6]
    zero = one - one
    dropout = keep.shape[0] > 0
    units = np.empty((nb, rows, wu), dtype=z.dtype)  # relu(pre) keep
    gates = np.empty((nb, rows, wu), dtype=z.dtype)  # sign(relu(pre)) keep
    logits = np.empty((nb, rows, width), dtype=z.dtype)
    for n in range(nb):
        s = block_seed[n]
        for j in range(rows):
            for c in range(width):
                r = rows if hit[n, j, c] else j
                for k in range(u):
                    a = z[n, r, c * u + k]
                    h = zero if a <= zero else a  # NaN stays NaN
                    gate = one if a > zero else (zero if a <= zero else a)
                    if dropout:
                        h = h * keep[s, j, k]
                        gate = gate * keep[s, j, k]
                    units[n, j, c * u + k] = h
                    gates[n, j, c * u + k] = gate
            for c in range(width):
                acc = units[n, j, c * u] * w2[n, c, 0]
                for k in range(1, u):
                    acc = acc + units[n, j, c * u + k] * w2[n, c, k]
                logits[n, j, c] = acc + b2[n, c]
    g = np.empty_like(logits)
    _sigmoid_grad_into(logits.reshape(-1), y.reshape(-1), lr, batch, consts, g.reshape(-1))
    ext = np.empty_like(z)
    step = np.empty(wu, dtype=z.dtype)
    bias_step = np.empty(width, dtype=z.dtype)
    for n in range(nb):
        for q in range(wu):
            ext[n, rows, q] = zero
            step[q] = zero
        for c in range(width):
            bias_step[c] = zero
        for j in range(rows):
            for c in range(width):
                gj = g[n, j, c]
                bias_step[c] = bias_step[c] + gj
                for k in range(u):
                    q = c * u + k
                    step[q] = step[q] + gj * units[n, j, q]
                    ext[n, j, q] = (gj * w2[n, c, k]) * gates[n, j, q]
            for c in range(width):
                if hit[n, j, c]:  # the run's row here is x_0: its gradient goes to row B
                    for k in range(u):
                        ext[n, rows, c * u + k] = ext[n, j, c * u + k]
                        ext[n, j, c * u + k] = zero
        for c in range(width):
            for k in range(u):
                w2[n, c, k] = w2[n, c, k] - step[c * u + k]
            b2[n, c] = b2[n, c] - bias_step[c]
    return ext


def mlp_middle(z: torch.Tensor, batch: SharedBatch, w2: torch.Tensor, b2: torch.Tensor, lr: float) -> torch.Tensor:
    """The MLP's output gradients at the blocks' rows, ext (n_blocks, B + 1, width * h), from the forward
    product z of that shape, stepping w2 (n_blocks, width, h, 1) and b2 (n_blocks, width, 1) in place.
    Per run and row (row B where `batch.hit`): units relu(z) keep and gate sign(relu(z)) keep (keep: the
    seed's dropout multipliers), logit = (sum over k in order of unit_k w2_k) + b2, g = lr ((sigmoid(logit)
    - y) / B) (the tensor operations' bits), ext = (g w2_k) gate_k, moved to row B at a hit; w2 -= the sum
    over the rows in order of g unit_k, b2 -= the sum of g."""
    consts = constants(z.dtype)
    f = consts[1].dtype.type
    nb, rows, width = batch.hit.shape
    h = w2.shape[2]
    keep = batch.keep if batch.keep is not None else z.new_empty(0, rows, h)
    ext = _mlp_middle(
        z.numpy(), batch.hit.numpy(), batch.y.numpy(), keep.numpy(), batch.blocks.block_seed.numpy(),
        w2.view(nb, width, h).numpy(), b2.view(nb, width).numpy(), f(lr), f(rows), consts,
    )  # fmt: skip
    return torch.from_numpy(ext)


def compile_all() -> None:
    """Compile (or load from numba's cache) every loop for float32 and float64 on a tiny batch."""
    blocks = SeedBlocks.build(np.zeros(2, dtype=np.int64), 2, torch.device("cpu"))
    for dtype in (torch.float32, torch.float64):
        xs = torch.zeros(1, 3, 2, dtype=dtype)
        hit, y = torch.zeros(1, 2, 2, dtype=torch.bool), torch.zeros(1, 2, 2, dtype=torch.int64)
        for keep in (None, torch.ones(1, 2, 3, dtype=dtype)):
            batch = SharedBatch(xs, hit, y, keep, blocks)
            mlp_middle(
                torch.zeros(1, 3, 6, dtype=dtype),
                batch,
                torch.zeros(1, 2, 3, 1, dtype=dtype),
                torch.zeros(1, 2, 1, dtype=dtype),
                0.1,
            )
        logreg_middle(torch.zeros(1, 3, 2, dtype=dtype), batch, 0.1)


if __name__ == "__main__":
    compile_all()
