"""Host memory requests of training jobs: tied to the budget on the CPU, not on a GPU, and covering what a
real job holds and peaks at."""

import re

import numpy as np
import pytest

from sgd_privacy.train.hostmem import GPU_RUNTIME_MB, HOST_BASE_MB, shard_held_mb, training_host_mb
from sgd_privacy.train.shard import run_shard

SLICE = {"dtype": "float32", "dataset": "toy", "model": "mlp", "lr": 0.3, "batch_size": 4, "epochs": 3}
SLICE |= {"cadence": 5, "log_weights_at": None, "hidden": 5, "dropout": 0.25}
SPEC = {"seeds": [0, 1, 2], "replace": {"list": [3, 17]}, "init": "variable"}


def test_a_gpu_budget_is_not_asked_of_the_host():
    """A 60,000 MB GPU budget asks the node for the same host memory as a 2,048 MB one; on the CPU the
    budget is host memory, so the request grows MB for MB with it."""
    gpu_small, gpu_large = (training_host_mb(b, True, 100.0, 50.0) for b in (2048, 60000))
    assert gpu_small == gpu_large == HOST_BASE_MB + GPU_RUNTIME_MB + 250
    assert gpu_large < 60000
    cpu_small, cpu_large = (training_host_mb(b, False, 100.0, 50.0) for b in (2048, 60000))
    assert cpu_large - cpu_small == 60000 - 2048 and cpu_large > 60000
    with pytest.raises(ValueError, match="memory sizes must be positive"):
        training_host_mb(0, False, 1.0, 1.0)


def test_the_held_estimate_covers_a_real_shards_history_table():
    """The estimate from the dataset's metadata alone is at least the trained history table's weights
    (Arrow's own byte count) and at most four times the whole table."""
    rng = np.random.default_rng(5)
    arrays = {}
    for split, n in (("train", 30), ("val", 8), ("test", 6)):
        arrays[f"x_{split}"] = rng.normal(size=(n, 6)).astype(np.float32)
        arrays[f"y_{split}"] = rng.integers(0, 2, n)
    table = run_shard("toy", SLICE, SPEC, arrays, None, device="cpu", progress=None)
    meta = {"shapes": {"x_train": [30, 6]}, "n_classes": 2}
    held = shard_held_mb(SLICE, SPEC, meta) * 2**20
    assert table["weights"].nbytes <= held <= 4 * table.nbytes


def resources_logged(workdir) -> dict[str, list[dict[str, str]]]:
    """Per rule, the resources Snakemake logged for each job it ran (.snakemake/log)."""
    jobs: dict[str, list[dict[str, str]]] = {}
    for log in sorted(workdir.glob(".snakemake/log/*.snakemake.log")):
        rule = None
        for line in log.read_text().splitlines():
            if m := re.match(r"(?:local)?rule (\w+):", line):
                rule = m.group(1)
            elif rule and line.strip().startswith("resources:"):
                pairs = (kv.split("=", 1) for kv in line.split(":", 1)[1].split(", "))
                jobs.setdefault(rule, []).append({k.strip(): v.strip() for k, v in pairs})
                rule = None
    return jobs


@pytest.mark.slow
def test_training_jobs_requests_cover_their_measured_peaks(pipeline_results):
    """Every GPU-capable job of the shared run asked for at least the peak resident memory its benchmark file
    measured, and (device auto: a GPU job) for the same amount whatever the budget."""
    import pandas as pd

    jobs = resources_logged(pipeline_results.workdir)
    checked = 0
    for rule in ("train_shard", "mia_losses", "lira_shadows", "dp_train"):
        assert jobs.get(rule), f"no {rule} job in the shared run's Snakemake log"
        requests = [int(r["mem_mb"]) for r in jobs[rule]]
        assert all(r["gpu"] == "1" and r["device"] == "auto" for r in jobs[rule])
        peaks = [
            pd.read_csv(f, sep="\t")["max_rss"].iloc[0]
            for f in pipeline_results.files(f"logs/benchmarks/{rule}/**/*.tsv")
        ]
        assert peaks, rule
        assert max(peaks) < min(requests), (rule, max(peaks), min(requests))
        assert min(requests) >= HOST_BASE_MB + GPU_RUNTIME_MB
        checked += len(requests)
    assert checked >= 10
