"""The DP study's configurations: defaults merged, sweeps expanded, each reduced to the keys its algorithm uses."""

from __future__ import annotations

import math

from ..config import ConfigError

ALGORITHMS = ("sgd", "dpsgd", "sam", "sam_clip", "dpsam")
CLIPPED = frozenset({"dpsgd", "sam_clip", "dpsam"})  # per-example clipping through Opacus
NOISY = frozenset({"dpsgd", "dpsam"})  # Gaussian noise (a noise multiplier or a target epsilon)
SAM = frozenset({"sam", "sam_clip", "dpsam"})
LR_SCHEDULES = ("constant", "step_decay")
COMMON_KEYS = ("dataset", "model", "algorithm", "epochs", "batch_size", "lr", "momentum", "l2", "dropout", "seed")


def resolve(name: str, settings: dict) -> dict:
    """The keys configuration `name` uses, given its merged settings; raise ConfigError on a contradiction."""
    where = f"config key 'dp' configuration {name!r}"
    algorithm = settings["algorithm"]
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"{where}: algorithm {algorithm!r} is unknown; allowed: {', '.join(ALGORITHMS)}")
    out = {k: settings[k] for k in COMMON_KEYS}
    if algorithm in SAM:
        out["rho"] = settings["rho"]
    if algorithm in CLIPPED:
        out["max_grad_norm"] = settings["max_grad_norm"]
        if out["max_grad_norm"] is None:
            raise ConfigError(f"{where}: algorithm {algorithm!r} clips per example, so max_grad_norm must be set")
    if algorithm in NOISY:
        noise, target = settings["noise_multiplier"], settings["target_epsilon"]
        if (noise is None) == (target is None):
            raise ConfigError(
                f"{where}: algorithm {algorithm!r} needs exactly one of noise_multiplier and target_epsilon "
                f"(got noise_multiplier={noise!r}, target_epsilon={target!r})"
            )
        out["noise_multiplier" if noise is not None else "target_epsilon"] = noise if noise is not None else target
    if settings["model"] in ("resnet18", "resnet50"):
        out["backbone_weights"] = settings["backbone_weights"]
        if not out["backbone_weights"]:
            raise ConfigError(
                f"{where}: model {settings['model']!r} needs backbone_weights, a local state-dict file of a GroupNorm "
                f"ResNet-{settings['model'][6:]} pretrained backbone (never downloaded; see config/README.md, section dp)"
            )
    schedule = settings.get("lr_schedule", "constant")
    if schedule not in LR_SCHEDULES:
        raise ConfigError(f"{where}: lr_schedule {schedule!r} is unknown; allowed: {', '.join(LR_SCHEDULES)}")
    if schedule != "constant":  # kept only when used, so constant-rate configurations keep their params
        out["lr_schedule"] = schedule
    return out


def lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    """The learning rate's multiplier in (1-based) `epoch` of `epochs`.

    `step_decay` is the SAM implementation's StepLR that [DG] used: 1 for the first 30% of the epochs,
    then 0.2, 0.2^2 from 60% and 0.2^3 from 80% (for 15 epochs: 5, 4, 3 and 3 epochs)."""
    if schedule == "constant":
        return 1.0
    done = epoch - 1  # epochs completed before this one
    for k, fraction in enumerate((0.3, 0.6, 0.8)):
        if done < epochs * fraction:
            return 0.2**k
    return 0.2**3


def value_label(value: object) -> str:
    """A sweep value as it appears in configuration names (3.0 -> '3', inf -> 'inf')."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return "inf" if math.isinf(value) else f"{value:g}"


def sweep_points(sweep: str, spec: dict) -> dict[str, dict]:
    """A sweep's points as {label: overrides}: one per value of `key` (plus that label's `overrides`), or its
    named `variants`."""
    has_key, has_variants = "key" in spec or "values" in spec, "variants" in spec
    if has_key == has_variants or (has_key and not ("key" in spec and "values" in spec)):
        raise ConfigError(
            f"config key 'dp.sweeps.{sweep}': give either `key` with `values`, or `variants` (not both, not neither)"
        )
    if has_variants:
        if "overrides" in spec:
            raise ConfigError(f"config key 'dp.sweeps.{sweep}.overrides': only a sweep with `key` and `values` has it")
        return dict(spec["variants"])
    points = {value_label(v): {spec["key"]: v} for v in spec["values"]}
    unknown = sorted(set(spec.get("overrides", {})) - set(points))
    if unknown:
        raise ConfigError(
            f"config key 'dp.sweeps.{sweep}.overrides': {', '.join(unknown)} is not a point label of the sweep "
            f"(labels: {', '.join(points)})"
        )
    return {label: {**over, **spec.get("overrides", {}).get(label, {})} for label, over in points.items()}


def configurations(dp: dict) -> dict[str, dict]:
    """Every named configuration of `dp` (explicit ones, then sweep points named `{sweep}-{label}`), resolved."""
    merged = {name: {**dp["defaults"], **over} for name, over in dp["configurations"].items()}
    for sweep, spec in dp["sweeps"].items():
        for label, over in sweep_points(sweep, spec).items():
            name = f"{sweep}-{label}"
            if name in merged:
                raise ConfigError(f"config key 'dp.sweeps.{sweep}': configuration name {name!r} is defined twice")
            merged[name] = {**dp["defaults"], **spec.get("base", {}), **over}
    return {name: resolve(name, settings) for name, settings in merged.items()}


def sweep_membership(dp: dict) -> list[dict]:
    """One row per sweep point: sweep, configuration, label, and the swept key (null for variants)."""
    rows = []
    for sweep, spec in dp["sweeps"].items():
        for label in sweep_points(sweep, spec):
            rows.append({"sweep": sweep, "configuration": f"{sweep}-{label}", "label": label, "key": spec.get("key")})
    return rows


def shadow_models(confs: dict[str, dict]) -> dict[tuple[str, str], dict]:
    """The shadow model each (dataset, model) pair needs: its architecture settings (one per pair)."""
    out: dict[tuple[str, str], dict] = {}
    for name, conf in confs.items():
        key = (conf["dataset"], conf["model"])
        arch = {"model": conf["model"], "backbone_weights": conf.get("backbone_weights")}
        if out.setdefault(key, arch) != arch:
            raise ConfigError(
                f"config key 'dp' configuration {name!r}: dataset {key[0]!r} with model {key[1]!r} is used with two "
                f"different backbone_weights ({out[key]['backbone_weights']!r}, {arch['backbone_weights']!r}); "
                "the shared shadow model needs one"
            )
    return out


def private(conf: dict) -> bool:
    """Whether a configuration adds noise (may still be epsilon = inf at noise 0 or target inf)."""
    return conf["algorithm"] in NOISY
