"""Neighbouring datasets D_i as index arrays over the base training set (docs/methods.md, section 2)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .errors import DataError

if TYPE_CHECKING:  # annotations only: the workflow's own process imports this module, never torch
    import torch


def check_replace_indices(replace: np.ndarray | list[int], n: int) -> np.ndarray:
    """Validate replace indices against a base set of n rows: each must lie in 1..n-1."""
    arr = np.asarray(replace, dtype=np.int64).reshape(-1)
    bad = arr[(arr < 1) | (arr >= n)]
    if bad.size:
        reason = (
            "index 0 is the row that replaces x_i, not a valid replace index"
            if (bad == 0).any()
            else f"the base set has {n} rows"
        )
        raise DataError(f"replace index {int(bad[0])} is invalid: replace indices lie in 1..{n - 1} ({reason})")
    return arr


def neighbour_index(n: int, i: int) -> np.ndarray:
    """Rows of the base set forming D_i: x_i overwritten by x_0, then row 0 deleted (n - 1 rows)."""
    check_replace_indices([i], n)
    idx = np.arange(n, dtype=np.int64)
    idx[i] = 0
    return idx[1:]


def neighbour_rows(positions: torch.Tensor, replace: torch.Tensor) -> torch.Tensor:
    """Base-set rows at `positions` (M, B) of D_{replace[m]} for each model m, without building D_i."""
    return (positions + 1).masked_fill(positions == (replace - 1).reshape(-1, 1), 0)


def check_batch_fits(meta: dict, batch_size: int, experiment: str) -> None:
    """Refuse an experiment whose batch is larger than the neighbouring datasets (n_train - 1 rows)."""
    rows = int(meta["n_train"]) - 1
    if batch_size > rows:
        files = f" (files: {', '.join(meta['source_files'])})" if meta.get("source_files") else ""
        raise DataError(
            f"dataset {meta['dataset']!r}{files} has {meta['n_train']} training rows, so each neighbouring "
            f"dataset has {rows}: fewer than one batch of experiment {experiment!r}; lower "
            f"experiments.{experiment}.batch_size ({batch_size}) to at most {rows}, or add rows to the dataset"
        )
