"""Helpers the workflow tests share: a copy of the workflow to run Snakemake in, the tiny grid, dry-run counts."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# The smallest useful grid: logistic regression on digits_binary, 4 seeds x 2 replace indices x both inits.
TINY_EXPERIMENT = {
    "dataset": "digits_binary",
    "model": "logreg",
    "lr": 0.5,
    "batch_size": 16,
    "epochs": 2,
    "cadence": 5,
    "seeds": 4,
    "replace_indices": 2,
    "shard": {"seeds": 4, "replace_indices": 2},
}
TINY_ANALYSIS = {"n_pairs": 50, "bootstrap": 20, "ad_simulations": 200}


def tiny_config(**sections: object) -> dict:
    """The tiny grid's config, with `sections` added or replacing the defaults."""
    config = {"prepare": [], "experiments": {"tiny": copy.deepcopy(TINY_EXPERIMENT)}, "analysis": dict(TINY_ANALYSIS)}
    config.update(copy.deepcopy(sections))
    return config


def copy_workflow(dest: Path, extra: tuple[str, ...] = ()) -> Path:
    """Copy the workflow (Snakefile, rules, config, envs and `extra` parts, not results) into `dest`;
    the library is linked, not copied."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in ("Snakefile", "workflow", "config", "envs", *extra):
        src = ROOT / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / part)
    (dest / "src").symlink_to(ROOT / "src")
    return dest


def write_config(workdir: Path, config: dict) -> None:
    """Make `config` the copied workflow's default config."""
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))


def run_snakemake(workdir: Path, *args: str, cores: int = 2, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run Snakemake in `workdir` and capture its output."""
    cmd = [*SNAKEMAKE, "--cores", str(cores), *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)


def planned(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts of a dry run's 'Job stats' table (the total excluded)."""
    counts, table = {}, False
    for line in result.stdout.splitlines():
        if line.startswith("job "):
            table = True
            continue
        if table:
            parts = line.split()
            if parts and parts[0] == "total":
                break
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
    return counts
