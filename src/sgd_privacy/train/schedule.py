"""The SGD schedule of a training slice: learning rate, batch size, epochs and the steps that are logged."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Schedule:
    """SGD hyper-parameters and what to log."""

    lr: float
    batch_size: int
    epochs: int
    cadence: int
    log_weights_at: tuple[int, ...] | None = None

    def steps_per_epoch(self, n_rows: int) -> int:
        """Full batches per epoch over a set of n_rows rows (the last incomplete batch is dropped)."""
        return n_rows // self.batch_size

    def log_steps(self, n_rows: int) -> np.ndarray:
        """Steps at which metrics are logged: 0, every cadence, and every weight step."""
        total = self.epochs * self.steps_per_epoch(n_rows)
        steps = set(range(0, total + 1, self.cadence)) | set(self.log_weights_at or ())
        return np.array(sorted(s for s in steps if s <= total), dtype=np.int64)

    def weight_steps(self, n_rows: int) -> np.ndarray:
        """Steps at which weights are kept."""
        logged = self.log_steps(n_rows)
        return logged if self.log_weights_at is None else logged[np.isin(logged, self.log_weights_at)]
