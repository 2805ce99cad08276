"""The config schema: defaults, and errors that name the key, the value and what is allowed."""

import copy
from pathlib import Path

import pytest
import yaml

from sgd_privacy.config import ConfigError, load_schema, validate_config
from sgd_privacy.data import DATASETS

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = load_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")
DEFAULT = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def check(config):
    return validate_config(copy.deepcopy(config), SCHEMA)


def test_default_config_is_valid_and_defaults_fill_in():
    cfg = check({"experiments": {"e": {"dataset": "digits_binary", "model": "mlp"}}})
    exp = cfg["experiments"]["e"]
    assert exp["init_modes"] == ["variable", "fixed"] and exp["shard"] == {"seeds": 50, "replace_indices": 10}
    assert cfg["data"] == {"data_dir": None, "cache_dir": "resources/cache", "download": False}
    assert cfg["training"]["device"] == "auto"
    check(DEFAULT)


def test_schema_lists_every_registered_dataset():
    assert set(SCHEMA["$defs"]["dataset_name"]["enum"]) == set(DATASETS)
    assert set(SCHEMA["properties"]["datasets"]["properties"]) == set(DATASETS)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda c: c["experiments"]["mnist5k_logreg"].update(lr=-0.5),
            r"config key 'experiments.mnist5k_logreg.lr': value -0.5 is invalid: -0.5 is less than or equal to the minimum of 0",
        ),
        (
            lambda c: c["experiments"]["mnist5k_logreg"].update(model="svm"),
            r"'experiments.mnist5k_logreg.model': value 'svm' is invalid: 'svm' is not one of \['logreg', 'mlp', 'cnn'\]",
        ),
        (
            lambda c: c["experiments"]["mnist5k_logreg"].update(init_modes=["random"]),
            r"'experiments.mnist5k_logreg.init_modes.0': value 'random' is invalid: 'random' is not one of \['variable', 'fixed'\]",
        ),
        (
            lambda c: c["experiments"]["mnist5k_logreg"].update(learning_rate=0.1),
            r"unknown key 'learning_rate' under 'experiments.mnist5k_logreg' \(allowed keys: T, batch_size",
        ),
        (
            lambda c: c.update(traning={}),
            r"unknown key 'traning' at the top level \(allowed keys: analysis, .*data, datasets",
        ),
        (
            lambda c: c["experiments"]["mnist5k_logreg"].update(seeds=0),
            r"'experiments.mnist5k_logreg.seeds': value 0 is invalid: 0 is less than the minimum of 1",
        ),
        (
            lambda c: c["training"].update(device="tpu"),
            r"'training.device': value 'tpu' is invalid: 'tpu' is not one of",
        ),
        (lambda c: c["datasets"].update(cifar2={"features": "raw"}), r"'datasets.cifar2.features': value 'raw'"),
        (
            lambda c: c["experiments"]["mnist5k_logreg"].pop("model"),
            r"'experiments.mnist5k_logreg': 'model' is a required property",
        ),
        (
            lambda c: c["experiments"].update({"1bad": {"dataset": "digits_binary", "model": "logreg"}}),
            r"'experiments': value",
        ),
    ],
)
def test_bad_configs_are_named(mutate, message):
    cfg = copy.deepcopy(DEFAULT)
    mutate(cfg)
    with pytest.raises(ConfigError, match=message):
        check(cfg)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda e: e.update(log_weights_at=[0, 100]),
            r"'experiments.mnist5k_logreg.T': with log_weights_at set, .* set T to one of",
        ),
        (
            lambda e: e.update(log_weights_at=[0, 100], T=50),
            r"'experiments.mnist5k_logreg.T': value 50 is not in log_weights_at \[0, 100\]",
        ),
    ],
)
def test_cross_key_rules(mutate, message):
    cfg = copy.deepcopy(DEFAULT)
    mutate(cfg["experiments"]["mnist5k_logreg"])
    with pytest.raises(ConfigError, match=message):
        check(cfg)
    cfg["experiments"]["mnist5k_logreg"].update(log_weights_at=[0, 100], T=100)
    check(cfg)


def test_analysis_must_name_known_experiments():
    cfg = copy.deepcopy(DEFAULT)
    cfg["analysis"]["experiments"] = ["mnist5k_logreg", "nope"]
    with pytest.raises(ConfigError, match=r"'analysis.experiments': unknown experiments \['nope'\]"):
        check(cfg)
