"""Cross-key checks of the `mia` config section (no numerical imports: the workflow's own process runs them)."""

from __future__ import annotations


def check_mia_config(config: dict) -> None:
    """Cross-key checks of the `mia` section; raise ValueError naming the key and the fix."""
    mia, experiments = config["mia"], config["experiments"]
    for name, steps in mia["experiments"].items():
        if name not in experiments:
            raise ValueError(
                f"config key 'mia.experiments': unknown experiment {name!r}; defined: {sorted(experiments)}"
            )
        kept = experiments[name]["log_weights_at"]
        if steps is not None and kept is not None and not set(steps) <= set(kept):
            raise ValueError(
                f"config key 'mia.experiments.{name}': steps {sorted(set(steps) - set(kept))} keep no weights; "
                f"add them to experiments.{name}.log_weights_at {kept}"
            )
    name = mia["lira"]["experiment"]
    if name is not None and name not in experiments:
        raise ValueError(
            f"config key 'mia.lira.experiment': unknown experiment {name!r}; defined: {sorted(experiments)}"
        )
