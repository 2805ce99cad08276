"""Helpers the workflow tests share: a copy of the workflow to run Snakemake in, the tiny grid, dry-run counts,
and the one small pipeline run that the end-to-end tests, the golden values and the real-results report share."""

from __future__ import annotations

import copy
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
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
# the small MLP that the membership-inference tests attack (tests/test_mia.py and the shared run's `mlp`)
TINY_MLP_EXPERIMENT = {
    "dataset": "digits_binary",
    "model": "mlp",
    "hidden": 8,
    "lr": 0.5,
    "batch_size": 16,
    "epochs": 4,
    "cadence": 10,
    "seeds": 4,
    "replace_indices": 2,
    "init_modes": ["variable"],
    "shard": {"seeds": 2, "replace_indices": 2},
}
TINY_ANALYSIS = {"n_pairs": 50, "bootstrap": 20, "ad_simulations": 200}


class SnakemakeFailed(AssertionError):
    """A Snakemake call ended with an exit status the test did not expect."""


def tiny_config(**sections: object) -> dict:
    """The tiny grid's config, with `sections` added or replacing the defaults."""
    config = {"prepare": [], "experiments": {"tiny": copy.deepcopy(TINY_EXPERIMENT)}, "analysis": dict(TINY_ANALYSIS)}
    config.update(copy.deepcopy(sections))
    return config


NUMBA_CACHE = "resources/numba_cache"  # workflow/scripts/weight_embedding.py's kernel cache


def copy_workflow(dest: Path, extra: tuple[str, ...] = ()) -> Path:
    """Copy the workflow (Snakefile, rules, config, envs and `extra` parts, not results) into `dest`;
    the library is linked, not copied, and so is umap's kernel cache (resources/numba_cache, compiled by
    the Makefile's set-up): a copy's embedding jobs load the kernels instead of compiling them again."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in ("Snakefile", "workflow", "config", "envs", *extra):
        src = ROOT / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / part)
    (dest / "src").symlink_to(ROOT / "src")
    (ROOT / NUMBA_CACHE).mkdir(parents=True, exist_ok=True)
    (dest / NUMBA_CACHE).parent.mkdir(exist_ok=True)
    (dest / NUMBA_CACHE).symlink_to(ROOT / NUMBA_CACHE)
    return dest


def write_config(workdir: Path, config: dict) -> None:
    """Make `config` the copied workflow's default config."""
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))


def run_snakemake(
    workdir: Path, *args: str, cores: int = 2, timeout: int = 900, fails: bool = False
) -> subprocess.CompletedProcess:
    """Run Snakemake in `workdir` and capture its output; raise SnakemakeFailed when it exits non-zero
    (or, with `fails=True`, when it exits zero), so that no caller can mistake a crash for a result."""
    cmd = [*SNAKEMAKE, "--cores", str(cores), *args]
    result = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    if (result.returncode != 0) != fails:
        expected = "fail" if fails else "succeed"
        raise SnakemakeFailed(
            f"`snakemake {' '.join(cmd[3:])}` in {workdir} exited {result.returncode}; the test expected it to "
            f"{expected}.\n--- stdout (end)\n{result.stdout[-3000:]}\n--- stderr (end)\n{result.stderr[-5000:]}"
        )
    return result


def planned(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Job counts of a successful dry run's 'Job stats' table (the total excluded); {} only when Snakemake
    said 'Nothing to be done'. A failed call, a call that was not a dry run or output with neither raises."""
    args = [str(a) for a in result.args]
    if "-n" not in args and "--dry-run" not in args:
        raise ValueError(f"planned() reads a dry run's output; `{' '.join(args)}` has no -n")
    if result.returncode != 0:
        raise SnakemakeFailed(f"the dry run exited {result.returncode}:\n{result.stderr[-5000:]}")
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
    if not counts and "Nothing to be done" not in result.stdout + result.stderr:
        raise SnakemakeFailed(
            "the dry run printed neither a job table nor 'Nothing to be done':\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return counts


def in_ci() -> bool:
    """Whether this is a CI run (CI=true, as .ci/run, GitHub Actions, GitLab and most CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def require_service(name: str, reason: str | None) -> None:
    """Skip the calling test when the test service `name` is unavailable (`reason` is why); under CI=true fail
    it instead, since CI must run every test. A no-op when `reason` is None (the service is up)."""
    import pytest

    if reason is None:
        return
    message = f"{name} is not available: {reason}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: a test service that cannot be set up fails the run)", pytrace=False)
    pytest.skip(message)


# ---------------------------------------------------------------- the shared pipeline run
# One small config that reaches every stage: the tiny logreg grid (analysis, output perturbation), a
# breast-cancer logreg with enough seeds for the Henze-Zirkler test, an MLP attacked by the MIA and
# LiRA stages, and the DP study (plain SGD, DP-SGD calibrated to a target epsilon, DP-SAM at a fixed
# noise multiplier) on mnist5k. Every value pinned in tests/data/golden.csv comes from this run.
PIPELINE_CONFIG: dict = {
    "prepare": [],
    # one thread a job: on `make test`'s two cores Snakemake then runs two jobs at once (a training job of
    # the test's sizes uses one core; with threads 2 each would hold both); results do not depend on it
    "training": {"threads": 1},
    "experiments": {
        "tiny": copy.deepcopy(TINY_EXPERIMENT),
        "hz": {
            "dataset": "breast_cancer",
            "model": "logreg",
            "lr": 0.5,
            "batch_size": 32,
            "epochs": 2,
            "cadence": 10,
            "seeds": 40,  # > 31 parameters: the Henze-Zirkler test applies
            "replace_indices": 1,
            "init_modes": ["variable"],
            "shard": {"seeds": 40, "replace_indices": 1},
        },
        "mlp": copy.deepcopy(TINY_MLP_EXPERIMENT),
    },
    "analysis": {**TINY_ANALYSIS, "experiments": ["tiny", "hz"]},
    # the HZ power simulation at the hz experiment's dimension and seed count, so the report weighs its HZ verdict
    "hz_power": {"enabled": True, "dimensions": [31], "seeds": [20, 40], "replicates": 5},
    "perturbation": {
        "experiments": ["tiny"],
        "noise_draws": 5,
        "k_values": [1, 10],
        "attack_examples": 20,
        "dp_sgd": {"epochs": 1},
    },
    "mia": {
        "experiments": {"mlp": [10, 20]},
        "n_members": 40,
        "n_nonmembers": 40,
        "n_threshold": 40,
        "lira": {"experiment": "mlp", "seeds": 2, "shadows": 4, "pool_size": 80, "epochs": 3},
    },
    "dp": {
        "repeats": 1,
        "shadow": {"epochs": 1},
        "attack": {"epochs": 10},
        "defaults": {"dataset": "mnist5k", "epochs": 1, "batch_size": 64},
        "sweeps": {
            "compare": {
                "variants": {
                    "sgd": {"algorithm": "sgd"},
                    "dpsgd": {"algorithm": "dpsgd", "target_epsilon": 3},
                    "dpsam": {"algorithm": "dpsam", "noise_multiplier": 1.0},
                }
            }
        },
    },
}
PIPELINE_TIMEOUT = 1200


@dataclass(frozen=True)
class Pipeline:
    """A finished run of PIPELINE_CONFIG: read its results, never write into it (clone it to change things)."""

    workdir: Path
    config: dict

    def table(self, relative: str) -> pd.DataFrame:
        """A results table by its path below the workdir (e.g. 'results/dp/summary.parquet')."""
        path = self.workdir / relative
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)

    def files(self, pattern: str) -> list[str]:
        """The run's files matching a glob below the workdir, sorted, as strings."""
        return sorted(map(str, self.workdir.glob(pattern)))

    def clone(self, dest: Path) -> Path:
        """Copy the finished run (workflow, config, results, logs and Snakemake's records, modification times
        kept) to `dest`, where a test may change the config and dry-run or rerun it."""
        shutil.copytree(self.workdir, dest, symlinks=True, ignore=shutil.ignore_patterns(".pipeline-*"))
        return dest


def run_pipeline(workdir: Path, config: dict | None = None, cores: int = 2) -> Pipeline:
    """Copy the workflow to `workdir`, run `config` (PIPELINE_CONFIG by default) to the end, and check that
    a dry run afterwards has nothing to do."""
    config = copy.deepcopy(PIPELINE_CONFIG if config is None else config)
    copy_workflow(workdir)
    write_config(workdir, config)
    run_snakemake(workdir, cores=cores, timeout=PIPELINE_TIMEOUT)
    if planned(run_snakemake(workdir, "-n")) != {}:
        raise SnakemakeFailed("a dry run after the shared pipeline run still plans jobs")
    return Pipeline(workdir, config)


def shared_pipeline(root: Path) -> Pipeline:
    """The run of PIPELINE_CONFIG in `root`/pipeline, made once per test session: a file lock makes the
    pytest-xdist workers (which share `root`) wait for one run instead of each making its own; a failed run
    is recorded so the next caller fails at once with the same message."""
    from filelock import FileLock  # installed with torch (a dependency of it), so no extra pin

    workdir = root / "pipeline"
    done, failed = root / ".pipeline-done", root / ".pipeline-failed"
    with FileLock(str(root / ".pipeline.lock")):
        if failed.exists():
            raise SnakemakeFailed(f"the shared pipeline run failed earlier in this session:\n{failed.read_text()}")
        if not done.exists():
            start = time.monotonic()
            try:
                run_pipeline(workdir)
            except Exception as err:
                failed.write_text(f"{type(err).__name__}: {err}")
                raise
            done.write_text(f"{time.monotonic() - start:.0f} s, pid {os.getpid()}\n")
    return Pipeline(workdir, copy.deepcopy(PIPELINE_CONFIG))


# ---------------------------------------------------------------- golden values of the shared run
GOLDEN = ROOT / "tests" / "data" / "golden.csv"
GOLDEN_COLUMNS = ["table", "selector", "column", "value", "rel_tol", "abs_tol", "why"]


@dataclass(frozen=True)
class Golden:
    """One pinned number: `column` of the single row of results/`table` that `selector` picks
    ('key=value;key=value', compared as text; empty: the table has one row)."""

    table: str
    selector: str
    column: str
    value: float
    rel_tol: float
    abs_tol: float
    why: str

    @property
    def key(self) -> str:
        """A readable id: table[selector].column."""
        return f"{self.table}[{self.selector}].{self.column}"

    def measure(self, workdir: Path) -> float:
        """The number as the run in `workdir` has it; raises when the selector does not pick exactly one row."""
        frame = pd.read_parquet(workdir / "results" / self.table)
        if self.column not in frame.columns:
            raise KeyError(f"{self.key}: results/{self.table} has no column {self.column!r} ({list(frame.columns)})")
        keep = pd.Series(True, index=frame.index)
        for term in filter(None, self.selector.split(";")):
            name, _, want = term.partition("=")
            keep &= frame[name].astype(str) == want
        rows = frame[keep]
        if len(rows) != 1:
            raise KeyError(f"{self.key}: the selector picks {len(rows)} rows of results/{self.table}, not one")
        return float(rows[self.column].iloc[0])

    def allowed(self) -> float:
        """The largest deviation accepted: abs_tol + rel_tol * |value|."""
        return self.abs_tol + self.rel_tol * abs(self.value)

    def matches(self, measured: float) -> bool:
        """Whether `measured` is within the tolerance (NaN matches NaN, an infinity only itself)."""
        if math.isnan(self.value) or math.isinf(self.value):
            return measured == self.value or (math.isnan(self.value) and math.isnan(measured))
        return abs(measured - self.value) <= self.allowed()


def read_golden(path: Path = GOLDEN) -> list[Golden]:
    """The pinned values (tests/data/golden.csv); an empty value cell reads as NaN."""
    frame = pd.read_csv(path, keep_default_na=False, dtype=str)
    if list(frame.columns) != GOLDEN_COLUMNS:
        raise ValueError(f"{path}: columns {list(frame.columns)}, expected {GOLDEN_COLUMNS}")
    return [
        Golden(r.table, r.selector, r.column, float(r.value or "nan"), float(r.rel_tol), float(r.abs_tol), r.why)
        for r in frame.itertuples()
    ]


def write_golden(rows: list[Golden], path: Path = GOLDEN) -> None:
    """Write the pinned values with full float precision (repr), one row each, in the given order."""
    frame = pd.DataFrame(
        [[g.table, g.selector, g.column, repr(g.value), repr(g.rel_tol), repr(g.abs_tol), g.why] for g in rows],
        columns=GOLDEN_COLUMNS,
    )
    frame.to_csv(path, index=False, lineterminator="\n")


# ---------------------------------------------------------------- a real browser
SETUP_CHROMIUM = ROOT / "tests" / "setup_chromium.sh"


def find_chromium() -> str:
    """The Chromium binary, installed by tests/setup_chromium.sh when missing (needs root and apt); skips the
    test with the reason where it cannot be had (fails it under CI=true)."""
    found = shutil.which("chromium")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        result = subprocess.run(["bash", str(SETUP_CHROMIUM)], capture_output=True, text=True, timeout=900)
        found = shutil.which("chromium")
        if found is None:
            require_service("Chromium", f"it could not be installed: {result.stderr[-500:]}")
    if found is None:
        require_service("Chromium", "not installed and cannot be (needs root and apt-get): run tests/setup_chromium.sh")
    assert found is not None
    return found


def chromium_run(binary: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    """Run headless Chromium with a private profile in `tmp` (e.g. `--dump-dom URL`, `--screenshot=F URL`)."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={tmp / 'profile'}",
    ]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=180)
