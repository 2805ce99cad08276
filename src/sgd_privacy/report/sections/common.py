"""Helpers shared by the report's sections: the config slice, T and settings behind a figure or table."""

from __future__ import annotations

from ..frames import Inputs


def count(value: int | list) -> int:
    """A grid size given as a count or as an explicit list."""
    return len(value) if isinstance(value, list) else int(value)


def describe_experiments(inputs: Inputs, names: list[str]) -> str:
    """The config slice behind a figure or table: each experiment's model, data and grid."""
    exps = inputs.experiments()
    parts = []
    for name in sorted(set(names)):
        e = exps.get(name)
        if not e:
            parts.append(name)
            continue
        parts.append(
            f"{name}: {e.get('model')} on {e.get('dataset')}, lr {e.get('lr')}, batch {e.get('batch_size')}, "
            f"{e.get('epochs')} epochs, {count(e.get('seeds', 0))} seeds x {count(e.get('replace_indices', 0))} D_i, "
            f"init {'/'.join(e.get('init_modes', []))}"
        )
    return "Config slice: " + ("; ".join(parts) if parts else "(not given)") + "."


def analysis_settings(inputs: Inputs, keys: list[str]) -> str:
    """The analysis settings a figure or table depends on."""
    a = inputs.config.get("analysis") or {}
    shown = [f"{k} = {a[k]}" for k in keys if k in a]
    return ("Analysis settings: " + ", ".join(shown) + ".") if shown else ""


def experiment_T(inputs: Inputs) -> dict[str, int]:
    """Each experiment's T (from the convergence tables, else from the distances at T)."""
    if inputs.has("convergence") and {"experiment", "T"} <= set(inputs.tables["convergence"].columns):
        c = inputs.tables["convergence"]
        return {str(k): int(v) for k, v in zip(c["experiment"], c["T"], strict=True)}
    if inputs.has("distances_at_T") and "t" in inputs.tables["distances_at_T"]:
        at = inputs.tables["distances_at_T"]
        return {str(k): int(g["t"].iloc[0]) for k, g in at.groupby("experiment")}
    return {}


def stage_settings(inputs: Inputs, key: str) -> str:
    """The config slice of a stage (`key` in the report's config params), or a note that it was not passed."""
    value = inputs.config.get(key)
    if value is None:
        return f"Config slice: the '{key}' settings were not passed to the report."
    shown = ", ".join(f"{k} = {v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
    return f"Config slice ({key}): {shown}."


def fmt(x: float) -> str:
    """A number to 3 significant digits."""
    return f"{x:.3g}"
