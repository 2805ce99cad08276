"""The typed training settings come from the validated config's slice, with no defaults of their own."""

import copy
from pathlib import Path

import pytest
import yaml

from sgd_privacy.config import load_schema, validate_config
from sgd_privacy.errors import ConfigError
from sgd_privacy.train.batched import Schedule
from sgd_privacy.train.grid import architecture_slice, training_slice
from sgd_privacy.train.models import build_model
from sgd_privacy.train.settings import ModelSettings, TrainingSettings

ROOT = Path(__file__).resolve().parents[1]


def validated() -> dict:
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    return validate_config(copy.deepcopy(config), load_schema(ROOT / "workflow/schemas/config.schema.yaml"))


def test_settings_take_the_schema_defaults_from_the_slice():
    config = validated()
    exp = config["experiments"]["mnist5k_mlp"]
    settings = TrainingSettings.from_slice(training_slice(exp, "float64"))
    assert settings.model == ModelSettings("mlp", hidden=exp["hidden"], dropout=exp["dropout"])
    assert settings.schedule == Schedule(exp["lr"], exp["batch_size"], exp["epochs"], exp["cadence"], None)
    assert settings.dtype == "float64" and settings.dataset == "mnist5k_binary"
    cnn = ModelSettings.from_slice(architecture_slice(config["experiments"]["mnist5k_cnn"]))
    assert cnn == ModelSettings("cnn", cnn_size=config["experiments"]["mnist5k_cnn"]["cnn_size"])
    assert ModelSettings.from_slice({"model": "logreg", "hidden": 99}) == ModelSettings("logreg")


def test_missing_keys_are_errors_not_guesses():
    with pytest.raises(ConfigError, match=r"the mlp slice lacks \['dropout'\]"):
        ModelSettings.from_slice({"model": "mlp", "hidden": 10})
    with pytest.raises(ConfigError, match="unknown model 'svm'"):
        ModelSettings.from_slice({"model": "svm"})
    with pytest.raises(ConfigError, match=r"a training slice lacks \['cadence'"):
        TrainingSettings.from_slice({"dataset": "d", "model": "logreg", "lr": 1, "batch_size": 2, "epochs": 1})
    with pytest.raises(ValueError, match="model 'cnn' needs cnn_size"):
        build_model("cnn", (1, 8, 8), 3)
    with pytest.raises(ValueError, match="model 'mlp' needs hidden and dropout"):
        build_model("mlp", (4,), 2, hidden=3)
