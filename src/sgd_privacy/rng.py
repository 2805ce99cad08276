"""Counter-based random numbers: every draw is a pure function of (seed, purpose, step, index).

Framework generators cannot be seeded per model inside one batched operation, so the
batched trainer and the reference trainer both take their randomness from here. The
hash works on 32-bit values held in int64 tensors, with multipliers below 2**31 so no
product overflows: results are identical on every device and for every batch layout.
"""

from __future__ import annotations

import math
from enum import IntEnum

import torch

MASK32 = 0xFFFFFFFF
_MUL1 = 0x7FEB352D
_MUL2 = 0x68E31DA5
_GOLDEN = 0x9E3779B9


class Purpose(IntEnum):
    """Independent random streams; values are part of the results' identity, never reorder."""

    INIT = 1
    FIXED_INIT = 2
    PERMUTATION = 3
    DROPOUT = 4
    REPLACE_INDEX = 5
    SPLIT = 6
    PAIRS = 7
    SUBSET = 8
    BOOTSTRAP = 9
    # output perturbation (docs/methods.md, section 9)
    OUTPUT_NOISE = 40
    QUERY_NOISE = 41


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """Bijective avalanche of 32-bit values held in int64 (xorshift-multiply finaliser)."""
    x = x ^ (x >> 16)
    x = (x * _MUL1) & MASK32
    x = x ^ (x >> 15)
    x = (x * _MUL2) & MASK32
    return x ^ (x >> 16)


def _as_long(value: int | torch.Tensor, device: torch.device | None) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.int64, device=device)


def hash32(
    seed: int | torch.Tensor,
    purpose: int,
    step: int | torch.Tensor,
    index: int | torch.Tensor,
    device: torch.device | None = None,
) -> torch.Tensor:
    """32-bit hash of broadcastable (seed, purpose, step, index); bijective in `index`."""
    if isinstance(seed, torch.Tensor):
        device = seed.device
    elif isinstance(index, torch.Tensor):
        device = index.device
    seed_t = _as_long(seed, device)
    if seed_t.device.type == "cpu" and bool(((seed_t < 0) | (seed_t > MASK32)).any()):  # no device sync per call
        raise ValueError("seeds must lie in [0, 2**32)")
    h = _mix32(seed_t ^ _GOLDEN)
    h = _mix32(h ^ int(purpose))
    h = _mix32(h ^ (_as_long(step, device) & MASK32))
    salt = _mix32(h ^ _GOLDEN)
    return _mix32(_mix32(h ^ (_as_long(index, device) & MASK32)) ^ salt)


def uniform(
    seed: int | torch.Tensor,
    purpose: int,
    step: int | torch.Tensor,
    index: torch.Tensor,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Uniform draws in [0, 1) with 53 random bits, one per (seed, step, index) element."""
    index = torch.as_tensor(index, dtype=torch.int64)
    hi = hash32(seed, purpose, step, 2 * index) >> 6
    lo = hash32(seed, purpose, step, 2 * index + 1) >> 5
    return ((hi * (1 << 27) + lo).to(torch.float64) * 2.0**-53).to(dtype)


def normal(
    seed: int | torch.Tensor,
    purpose: int,
    step: int | torch.Tensor,
    index: torch.Tensor,
) -> torch.Tensor:
    """Standard normal draws (float64, Box-Muller on two uniforms), one per (seed, step, index) element."""
    index = torch.as_tensor(index, dtype=torch.int64)
    u1 = uniform(seed, purpose, step, 2 * index)
    u2 = uniform(seed, purpose, step, 2 * index + 1)
    return torch.sqrt(-2.0 * torch.log1p(-u1)) * torch.cos(2.0 * math.pi * u2)


def permutations(seeds: torch.Tensor, purpose: int, step: int, n: int) -> torch.Tensor:
    """One permutation of range(n) per seed (rows), by sorting bijective hash keys."""
    idx = torch.arange(n, dtype=torch.int64, device=seeds.device)
    keys = hash32(seeds.reshape(-1, 1), purpose, step, idx.reshape(1, -1))
    return torch.argsort(keys, dim=1, stable=True)


def permutation(seed: int, purpose: int, step: int, n: int) -> torch.Tensor:
    """One permutation of range(n) for a single seed."""
    return permutations(torch.tensor([seed], dtype=torch.int64), purpose, step, n)[0]
