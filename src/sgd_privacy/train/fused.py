"""The binary models' step gradient lr * ((sigmoid(z) - y) / B) as one compiled loop on the CPU (numba).

`Model.logit_grad` times lr, written with `sgd_privacy.train.exact`'s sigmoid, is about 25 tensor
operations on the step's (n_blocks, B, width) logits; on the CPU each is a pass over memory and a
dispatch, and together they cost the MLP's step about a tenth of its time. This is the same arithmetic,
operation for operation in the same order and dtype, in one vectorised loop: exp by Cody-Waite
reduction (k = round(x / ln 2) half to even, as the 1.5 x 2**mantissa addition rounds), Taylor's
polynomial by Horner's rule and 2**k built from its exponent bits, then 1 / (1 + exp(-z)), minus the
label, divided by B, times lr. Every operation is correctly rounded and the loop is compiled without
fast-math (no reassociation, no fused multiply-add), so its vector and scalar lanes give the same bits,
which are those of the tensor operations (tested over the float32 and float64 ranges, NaN and
infinities). The GPU keeps the tensor operations.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import numba
import numpy as np
import torch

from .exact import _LN2_HI, _LN2_LO, _SPEC


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


@numba.njit(fastmath=False, error_model="numpy", boundscheck=False, nogil=True, cache=True)
def _sigmoid_grad(logits, y, lr, batch, consts):  # noqa: ANN001, ANN202
    """lr * ((sigmoid(logits) - y) / batch) for C-contiguous arrays of one shape (a new array)."""
    coefs, bound, inv_ln2, ln2_hi, ln2_lo, magic, one, bias, mant, ints = consts
    z, labels = logits.reshape(-1), y.reshape(-1)
    out = np.empty_like(logits)
    flat = out.reshape(-1)
    bits = np.empty(len(z), dtype=ints.dtype)  # integers of the float's width
    f, i_of = flat.dtype.type, ints.dtype.type
    for i in range(len(z)):
        x = -z[i]
        x = -bound if x < -bound else x  # a clamp that keeps NaN
        x = bound if x > bound else x
        k = (x * inv_ln2 + magic) - magic  # round half to even, as torch.round
        r = (x - k * ln2_hi) - k * ln2_lo
        p = coefs[0]
        for c in coefs[1:]:
            p = p * r + c
        flat[i] = p
        bits[i] = ((i_of(k) if k == k else i_of(0)) + bias) << mant  # 2**k (|k| <= 126 or 1022 after the clamp)
    scale = bits.view(flat.dtype)
    for i in range(len(z)):
        flat[i] = lr * (((one / (one + flat[i] * scale[i])) - f(labels[i])) / batch)
    return out


def sigmoid_grad(logits: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
    """lr * ((sigmoid(logits) - y) / B) for logits (n, B, ...) float32 or float64 on the CPU and 0/1
    labels y of their shape: `Model.logit_grad` times lr, bit for bit, in one compiled loop."""
    consts = constants(logits.dtype)
    f = consts[1].dtype.type  # the logits' float type
    out = _sigmoid_grad(logits.contiguous().numpy(), y.contiguous().numpy(), f(lr), f(logits.shape[1]), consts)
    return torch.from_numpy(out)
