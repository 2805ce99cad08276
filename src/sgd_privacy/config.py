"""Config validation against the JSON schema, with defaults filled and errors that say how to fix them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

from .errors import ConfigError

__all__ = ["ConfigError", "load_schema", "validate_config"]


def load_schema(path: str | Path) -> dict:
    """Read a YAML or JSON schema file."""
    return yaml.safe_load(Path(path).read_text())


def _with_defaults(base: Any) -> Any:
    """A validator class that fills `default` values of absent properties while validating."""
    check_properties = base.VALIDATORS["properties"]

    def properties(validator, props, instance, schema):  # noqa: ANN001, ANN202 - jsonschema callback
        if isinstance(instance, dict):
            for name, sub in props.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, props, instance, schema)

    return validators.extend(base, {"properties": properties})


def _key(error: ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def describe(error: ValidationError) -> str:
    """One line naming the offending key, its value and what the schema allows there."""
    key = _key(error)
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        hint = f"allowed keys: {', '.join(allowed)}" if allowed else "no fixed keys here"
        where = f"under '{key}'" if error.absolute_path else "at the top level"
        return f"config: unknown key {', '.join(repr(e) for e in extra)} {where} ({hint})"
    if error.validator == "required":
        return f"config key '{key}': {error.message}"
    description = schema.get("description")
    if error.validator in ("oneOf", "anyOf") and description:
        return f"config key '{key}': value {error.instance!r} is invalid; expected {description}"
    return f"config key '{key}': value {error.instance!r} is invalid: {error.message}"


def check_consistency(config: dict) -> None:
    """Rules across keys that a schema cannot state; raise ConfigError naming the keys."""
    for name, exp in config["experiments"].items():
        kept, T = exp["log_weights_at"], exp["T"]
        if kept is not None and T is None:
            raise ConfigError(
                f"config key 'experiments.{name}.T': with log_weights_at set, the analyses need weights "
                f"at T, so set T to one of log_weights_at {kept}"
            )
        if kept is not None and T not in kept:
            raise ConfigError(f"config key 'experiments.{name}.T': value {T} is not in log_weights_at {kept}")
    unknown = sorted(set(config["analysis"]["experiments"] or []) - set(config["experiments"]))
    if unknown:
        raise ConfigError(
            f"config key 'analysis.experiments': unknown experiments {unknown}; "
            f"defined: {sorted(config['experiments'])}"
        )
    # --- perturbation ---
    chosen = config["perturbation"]["experiments"] or []
    wrong = sorted(n for n in chosen if config["experiments"].get(n, {}).get("model") != "logreg")
    if wrong:
        raise ConfigError(
            f"config key 'perturbation.experiments': {wrong} are not logistic-regression experiments of this config; "
            f"logreg experiments: {sorted(n for n, e in config['experiments'].items() if e['model'] == 'logreg')}"
        )
    # --- end perturbation ---
    check_custom_datasets(config)


def check_custom_datasets(config: dict) -> None:
    """Custom dataset entries (no clash with built-in names, files present, keys consistent) and the
    dataset names that experiments and `prepare` use; raise ConfigError naming the key."""
    from .data import DATASETS
    from .data.custom import config_problems

    custom = config.get("custom_datasets", {})
    for name, spec in custom.items():
        if name in DATASETS:
            raise ConfigError(
                f"config key 'custom_datasets.{name}': the name clashes with the built-in dataset {name!r}; "
                f"rename the custom dataset (e.g. 'my_{name}') and the experiments that use it"
            )
        problems = config_problems(name, spec)
        if problems:
            key, message = problems[0]
            raise ConfigError(f"config key 'custom_datasets.{name}.{key}': {message}")
    uses = [(f"prepare.{k}", d) for k, d in enumerate(config["prepare"])]
    uses += [(f"experiments.{e}.dataset", exp["dataset"]) for e, exp in config["experiments"].items()]
    for key, dataset in uses:
        if dataset not in DATASETS and dataset not in custom:
            raise ConfigError(
                f"config key '{key}': unknown dataset {dataset!r}; built-in datasets: {', '.join(sorted(DATASETS))}; "
                f"custom datasets (custom_datasets): {', '.join(sorted(custom)) or 'none'}"
            )


def validate_config(config: dict, schema: dict) -> dict:
    """Validate `config` in place (filling defaults) and return it; raise ConfigError on the first problem."""
    validator = _with_defaults(Draft202012Validator)(schema)
    errors = list(validator.iter_errors(config))
    if errors:
        raise ConfigError(describe(best_match(errors)))
    check_consistency(config)
    return config
