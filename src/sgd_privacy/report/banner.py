"""The banner at the top of the report: the config, its scale against the studies', what that scale can
carry, the verdict counts, and the provenance of the run (commit, date, config files, package versions)."""

from __future__ import annotations

import html
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..provenance import package_versions
from ..train.history import shard_devices
from . import study_values as sv
from . import tables as tb
from .blocks import Note
from .frames import Inputs
from .html import RenderedSection, table_html
from .verdict import RULE


def _count(value: object) -> int:
    """A grid size given as a count or as an explicit list (0 when absent)."""
    if isinstance(value, list):
        return len(value)
    return int(value) if isinstance(value, int | float) else 0


def scale_table(inputs: Inputs) -> pd.DataFrame:
    """Per experiment: seeds, datasets D_i, models and training-set size beside the study's Tables 1 and 3."""
    sizes: dict[str, float] = {}
    if inputs.has("dataset_meta") and {"dataset", "n_train"} <= set(inputs.tables["dataset_meta"].columns):
        meta = inputs.tables["dataset_meta"]
        sizes = {str(d): float(n) for d, n in zip(meta["dataset"], meta["n_train"], strict=True)}
    runs = inputs.tables.get("runs")
    rows = []
    for name, exp in sorted(inputs.experiments().items()):
        info = tb.experiment_info(inputs.experiments(), name)
        grid = tb.study_grid(inputs.experiments(), name)
        study = sv.study_dataset(info["dataset"])
        models = np.nan
        if runs is not None and "experiment" in runs:
            models = float((runs["experiment"] == name).sum())
        rows.append(
            {
                "experiment": name,
                "model": info["model"],
                "dataset": info["dataset"],
                "seeds": _count(exp.get("seeds")),
                "datasets_D_i": _count(exp.get("replace_indices")),
                "models": models,
                "n_train": sizes.get(info["dataset"], np.nan),
                "study_seeds": grid.get("seeds", np.nan),
                "study_datasets_D_i": grid.get("datasets", np.nan),
                "study_models": grid.get("models", np.nan),
                "study_n_train": sv.TABLE1_SIZES.get(study or "", {}).get("n_train", np.nan),
            }
        )
    return pd.DataFrame(rows)


def scale_words(scale: pd.DataFrame) -> str:
    """What conclusions a run of this scale can carry, in words."""
    if scale.empty:
        return "No experiments were passed to the report, so its scale is unknown."
    seeds = scale["seeds"].replace(0, np.nan)
    ratio = (seeds / scale["study_seeds"]).dropna()
    smallest = int(seeds.min()) if seeds.notna().any() else 0
    text = (
        f"This run uses {smallest} to {int(seeds.max()) if seeds.notna().any() else 0} seeds per dataset "
        f"against the study's {sv.DISTRIBUTION_SEEDS} for its distribution tests and 100 to 160 for its grids"
    )
    if len(ratio):
        text += f" ({ratio.min():.0%} to {ratio.max():.0%} of the study's seeds where it has the same model and data)"
    text += (
        "; the study's Table 6 used 1,000 to 1,500 CNN models per step. "
        "At this scale the run can show that the pipeline works and can confirm or contradict effects that are "
        "large against its own uncertainty; effects the study needed its full scale for, and test outcomes where "
        "the test's power here is low, are marked 'cannot tell at this size', not 'agrees' or 'differs'."
    )
    if (seeds >= scale["study_seeds"]).all():
        text = "This run matches or exceeds the study's seeds for every compared experiment; " + text
    return text


def verdict_counts(sections: Sequence[RenderedSection]) -> dict[str, int]:
    """How many notes of each verdict tone the rendered sections hold."""
    counts = {"agrees": 0, "differs": 0, "cannot_tell": 0}
    for s in sections:
        for b in s.blocks or []:
            if isinstance(b, Note) and b.tone in counts:
                counts[b.tone] += 1
    return counts


def collect_provenance(
    config_files: Sequence[str | os.PathLike], repo: str | os.PathLike = ".", shards: Sequence[str] = ()
) -> dict[str, object]:
    """The run's provenance for the banner: git commit (and whether the tree had changes), the commit's date,
    the config files, the package versions of this process and the devices
    that trained the `shards` (from their metadata)."""
    out: dict[str, object] = {"config_files": [os.fspath(p) for p in config_files]}
    if shards:
        out["devices"] = shard_devices(shards)

    def git(*args: str) -> str:
        try:
            done = subprocess.run(  # noqa: S603 - fixed git arguments
                ["git", *args],  # noqa: S607 - git from PATH, as the Makefile uses it
                cwd=repo,
                capture_output=True,
                text=True,
                timeout=20,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "HEAD")
    out["commit"] = (commit + (" (with uncommitted changes)" if git("status", "--porcelain") else "")) or "unknown"
    out["commit_date"] = git("log", "-1", "--format=%cI") or "unknown"
    out["packages"] = package_versions()
    return out


def provenance_html(provenance: Mapping[str, object] | None, config: Mapping) -> str:
    """The provenance block: commit, dates, config files, package versions and the devices that trained the shards."""
    if not provenance:
        return '<p class="note missing">Provenance not recorded: the report was built without it (commit, config files and package versions unknown).</p>'
    packages = provenance.get("packages") or {}
    versions = ", ".join(f"{k} {v}" for k, v in dict(packages).items())  # type: ignore[call-overload]
    files = ", ".join(str(f) for f in provenance.get("config_files") or []) or "config/config.yaml (default)"  # type: ignore[attr-defined]
    devices = dict(provenance.get("devices") or {})  # type: ignore[call-overload]
    device = "; ".join(f"{k}: {n} shard{'s' * (n != 1)}" for k, n in devices.items()) or "no training shards read"
    items = [
        ("Commit", provenance.get("commit", "unknown")),
        ("Commit date", provenance.get("commit_date", "unknown")),
        ("Config file(s)", files),
        ("Packages", versions or "unknown"),
        ("Device", device),
    ]
    rows = "".join(f"<li><b>{html.escape(k)}:</b> {html.escape(str(v))}</li>" for k, v in items)
    return f'<ul class="provenance">{rows}</ul>'


def config_name(provenance: Mapping[str, object] | None) -> str:
    """The config's name: the stem of its last config file, 'config' when not recorded."""
    files = list((provenance or {}).get("config_files") or [])  # type: ignore[call-overload]
    return Path(str(files[-1])).stem if files else "config (not recorded)"


def banner_html(inputs: Inputs, sections: Sequence[RenderedSection], provenance: Mapping[str, object] | None) -> str:
    """The banner: config name, scale against the study's, what it can carry, verdict counts, rule, provenance."""
    scale = scale_table(inputs)
    counts = verdict_counts(sections)
    tally = (
        f"{counts['agrees']} comparisons agree with the studies, {counts['differs']} differ, and "
        f"{counts['cannot_tell']} cannot tell at this size."
    )
    table = table_html(scale) if not scale.empty else ""
    return (
        f'<section id="banner" class="banner"><h2>Config {html.escape(config_name(provenance))}: scale and what it can show</h2>'
        f"<p>{html.escape(scale_words(scale))}</p>{table}<p><b>{html.escape(tally)}</b></p>"
        f'<p class="caption">{html.escape(RULE)}</p>{provenance_html(provenance, inputs.config)}</section>'
    )
