"""The typed form of a training job's config slice: built from the validated config, no defaults of its own.

The schema (workflow/schemas/config.schema.yaml) is the one place where defaults live; the
workflow passes each job the filled-in slice (`grid.training_slice`, `grid.architecture_slice`)
and the library turns it into these dataclasses, so a missing key is an error, never a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .grid import MODEL_KEYS
from .schedule import Schedule  # torch-free: the workflow's own process imports this module


def _require(slice_: Mapping[str, Any], keys: tuple[str, ...], what: str) -> None:
    missing = [k for k in keys if k not in slice_]
    if missing:
        raise ConfigError(f"{what} lacks {missing}; pass the validated config's slice (grid.training_slice)")


@dataclass(frozen=True)
class ModelSettings:
    """Which model an experiment trains and its architecture keys (None where the model has none)."""

    model: str
    hidden: int | None = None
    dropout: float | None = None
    cnn_size: int | None = None

    @staticmethod
    def from_slice(slice_: Mapping[str, Any]) -> ModelSettings:
        """The architecture of a training or architecture slice (the keys MODEL_KEYS names for its model)."""
        _require(slice_, ("model",), "a model slice")
        if slice_["model"] not in MODEL_KEYS:
            raise ConfigError(f"unknown model {slice_['model']!r}; expected one of {', '.join(MODEL_KEYS)}")
        keys = MODEL_KEYS[slice_["model"]]
        _require(slice_, keys, f"the {slice_['model']} slice")
        return ModelSettings(slice_["model"], **{k: slice_[k] for k in keys})


@dataclass(frozen=True)
class TrainingSettings:
    """Everything that determines a run's weights besides its seed, replace index and init mode."""

    dataset: str
    model: ModelSettings
    lr: float
    batch_size: int
    epochs: int
    cadence: int
    log_weights_at: tuple[int, ...] | None
    dtype: str

    @staticmethod
    def from_slice(slice_: Mapping[str, Any]) -> TrainingSettings:
        """The settings of a training slice (`grid.training_slice`)."""
        keys = ("dataset", "lr", "batch_size", "epochs", "cadence", "log_weights_at", "dtype")
        _require(slice_, keys, "a training slice")
        at = slice_["log_weights_at"]
        return TrainingSettings(
            slice_["dataset"],
            ModelSettings.from_slice(slice_),
            float(slice_["lr"]),
            int(slice_["batch_size"]),
            int(slice_["epochs"]),
            int(slice_["cadence"]),
            tuple(at) if at else None,
            slice_["dtype"],
        )

    @property
    def schedule(self) -> Schedule:
        """The SGD schedule."""
        return Schedule(self.lr, self.batch_size, self.epochs, self.cadence, self.log_weights_at)
