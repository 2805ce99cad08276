"""Preprocessing steps of docs/methods.md, section 1, each fitted on training rows only."""

from __future__ import annotations

import numpy as np
import pandas as pd


def validation_split(
    x: np.ndarray, y: np.ndarray, fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split off the first `fraction` of rows (positional) as validation: returns x_train, y_train, x_val, y_val."""
    n_val = round(fraction * len(x))
    return x[n_val:], y[n_val:], x[:n_val], y[:n_val]


def seeded_order(n: int, seed: int) -> np.ndarray:
    """A reproducible permutation of range(n) that depends on nothing but (n, seed)."""
    from ..rng import Purpose, permutation  # torch: imported on use, so the workflow's own process never loads it

    return permutation(seed, Purpose.SPLIT, 0, n).numpy()


def random_split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test) of a reproducible random split; train keeps the shuffled order."""
    order = seeded_order(n, seed)
    n_test = round(test_fraction * n)
    return order[n_test:], order[:n_test]


def pca_fit(x_fit: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Mean, top-k principal axes (k x d, sign-fixed) and explained-variance fraction of `x_fit`."""
    if k > min(x_fit.shape):
        raise ValueError(f"PCA to {k} components needs at least {k} rows and features, got {x_fit.shape}")
    mean = x_fit.mean(axis=0)
    _, s, vt = np.linalg.svd(x_fit - mean, full_matrices=False)
    signs = np.sign(vt[np.arange(len(vt)), np.argmax(np.abs(vt), axis=1)])
    axes = vt[:k] * signs[:k, None]
    explained = float((s[:k] ** 2).sum() / (s**2).sum())
    return mean, axes, explained


def pca_apply(x: np.ndarray, mean: np.ndarray, axes: np.ndarray) -> np.ndarray:
    """Project rows onto fitted principal axes."""
    return (x - mean) @ axes.T


def clip_norms(x: np.ndarray, max_norm: float = 1.0) -> np.ndarray:
    """Divide rows whose L2 norm exceeds `max_norm` by their norm (times max_norm)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms / max_norm, 1.0)


def unit_norm(x: np.ndarray) -> np.ndarray:
    """Scale every non-zero row to L2 norm 1."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def minmax_fit(x_fit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column minima and ranges of the fitting rows (range 1 for constant columns)."""
    lo = x_fit.min(axis=0)
    span = x_fit.max(axis=0) - lo
    return lo, np.where(span > 0, span, 1.0)


def nonconstant_columns(x_fit: np.ndarray) -> np.ndarray:
    """Boolean mask of columns that vary over the fitting rows."""
    return x_fit.max(axis=0) > x_fit.min(axis=0)


def one_hot_aligned(
    fit: pd.DataFrame, others: list[pd.DataFrame], categorical: list[str]
) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """One-hot encode with the first level dropped; other frames get exactly the fitted columns."""
    encoded = pd.get_dummies(fit, columns=categorical, drop_first=True, dtype=np.float64)
    aligned = [
        pd.get_dummies(o, columns=categorical, dtype=np.float64).reindex(columns=encoded.columns, fill_value=0.0)
        for o in others
    ]
    return encoded, aligned


def images_to_unit(images: np.ndarray) -> np.ndarray:
    """uint8 pixels to float32 in [0, 1]."""
    return (images.astype(np.float32) / 255.0).astype(np.float32)
