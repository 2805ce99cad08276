"""GPU jobs on Slurm: every rule that requests a GPU is routed to a GPU partition by the site file, and a
GPU job whose partition has no GPU stops the run before anything is submitted (sinfo preflight)."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from sgd_privacy.cluster import (
    ClusterError,
    check_gpu_partitions,
    default_partition,
    gpu_requests,
    gres_gpus,
    partition_gpus,
    read_partition_config,
    slurm_preflight,
)
from workflow_helpers import TINY_EXPERIMENT, copy_workflow, tiny_config, write_config

ROOT = Path(__file__).resolve().parents[1]
SITE_EXAMPLE = ROOT / "slurm" / "site.example.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

# `sinfo --noheader --format=%P|%G` as recorded on the one-node test cluster (tests/slurm/setup.sh) ...
SINFO_TEST_CLUSTER = "cpu*|gpu:1\ngpu|gpu:1\ncpuonly|(null)\n"
# ... and in the shape of a production cluster: typed GPUs with socket affinity, several node groups
# per partition, an MPS entry beside the GPUs, a partition without GPUs as the default.
SINFO_HPC = (
    "standard*|(null)\n"
    "gpu|gpu:a100:4(S:0-1)\n"
    "gpu|gpu:v100:2(S:0)\n"
    "shared|gpu:tesla:2,mps:200\n"
    "shared|(null)\n"
    "bigmem|(null)\n"
)


@pytest.mark.parametrize(
    ("gres", "gpus"),
    [
        ("(null)", 0),
        ("gpu:1", 1),
        ("gpu:a100:4(S:0-1)", 4),
        ("gpu:tesla:2,mps:200", 2),
        ("mps:100", 0),
        ("gpu:a100:2(S:0),gpu:v100:1(S:1)", 3),
        ("gpu", 1),
    ],
)
def test_gres_field_gpus_per_node(gres, gpus):
    assert gres_gpus(gres) == gpus


def test_sinfo_partitions_and_their_gpus():
    assert partition_gpus(SINFO_TEST_CLUSTER) == {"cpu": 1, "gpu": 1, "cpuonly": 0}
    assert default_partition(SINFO_TEST_CLUSTER) == "cpu"
    # a partition with several node groups has the GPUs of its best node
    assert partition_gpus(SINFO_HPC) == {"standard": 0, "gpu": 4, "shared": 2, "bigmem": 0}
    assert default_partition(SINFO_HPC) == "standard"
    assert default_partition("a|(null)\n") is None


def job(rule: str, gpus: int, threads: int = 1, **resources: object) -> SimpleNamespace:
    """A stand-in for a Snakemake job: what the plugin's partition choice and the preflight read."""
    res = {"gpu": gpus, "mem_mb": 2304, "runtime": 240, **resources}
    return SimpleNamespace(name=rule, rule=SimpleNamespace(name=rule), threads=threads, resources=res)


def test_preflight_stops_on_a_gpu_job_in_a_partition_without_gpus():
    jobs = [job("train_shard", 1), job("train_shard", 1), job("mia_losses", 1), job("distances", 0)]
    # no partition file: GPU jobs go to the default partition, which has none on the HPC-shaped cluster
    with pytest.raises(ClusterError) as err:
        slurm_preflight(jobs, None, SINFO_HPC)
    message = str(err.value)
    assert "partition 'standard' has no GPUs" in message and "mia_losses (1 GPU), train_shard (1 GPU)" in message
    assert "slurm/site.yaml" in message and "training.device: cpu" in message
    assert "distances" not in message
    # the same jobs on the test cluster, whose default partition's node has a GPU: nothing to say
    slurm_preflight(jobs, None, SINFO_TEST_CLUSTER)
    # a request larger than the partition's nodes (the issue's --set-resources train_shard:gpu=2)
    with pytest.raises(ClusterError, match=r"partition 'gpu' has only 1 GPU per node.*train_shard \(2 GPUs\)"):
        slurm_preflight([job("train_shard", 2, slurm_partition="gpu")], None, SINFO_TEST_CLUSTER)
    with pytest.raises(ClusterError, match=r"partition 'gpus' does not exist \(sinfo lists: cpu, cpuonly, gpu\)"):
        slurm_preflight([job("dp_train", 1, slurm_partition="gpus")], None, SINFO_TEST_CLUSTER)
    # no GPU requested anywhere (training.device: cpu): nothing to check, whatever the partitions
    slurm_preflight([job("train_shard", 0), job("distances", 0)], None, "cpu*|(null)\n")
    check_gpu_partitions({}, {})


def test_site_example_routes_gpu_jobs_to_the_gpu_partition_and_others_away_from_it(tmp_path):
    partitions = read_partition_config(SITE_EXAMPLE)
    # the example, as the plugin reads it; the preflight follows the plugin's choice
    requests = gpu_requests([job("lira_shadows", 1), job("dp_shadow", 1, threads=3), job("report", 0)], partitions, "x")
    assert requests == {"gpu": {"dp_shadow": 1, "lira_shadows": 1}}
    slurm_preflight([job("lira_shadows", 1)], SITE_EXAMPLE, SINFO_TEST_CLUSTER)
    # two GPUs fit no listed partition: the plugin falls back to the default one, which has 1 per node
    with pytest.raises(ClusterError, match=r"partition 'cpu' has only 1 GPU per node.*lira_shadows \(2 GPUs\)"):
        slurm_preflight([job("lira_shadows", 2)], SITE_EXAMPLE, SINFO_TEST_CLUSTER)
    # a site file that names a GPU partition wrongly is caught before submission
    wrong = tmp_path / "site.yaml"
    wrong.write_text(yaml.safe_dump({"partitions": {"cpu": {}, "cpuonly": {"max_gpu": 1}}}))
    with pytest.raises(ClusterError, match="partition 'cpuonly' has no GPUs"):
        slurm_preflight([job("train_shard", 1)], wrong, SINFO_TEST_CLUSTER)


# ------------------------------------------------------------- every GPU rule, from the workflow itself
# A config where every stage that trains runs: the grid, membership inference with LiRA, the DP study.
EVERY_STAGE = {
    "experiments": {"tiny": {**TINY_EXPERIMENT, "seeds": 4, "init_modes": ["variable"]}},
    "mia": {
        "experiments": {"tiny": [10]},
        "n_members": 40,
        "n_nonmembers": 40,
        "n_threshold": 40,
        "lira": {"experiment": "tiny", "seeds": 2, "shadows": 4, "pool_size": 80, "epochs": 3},
    },
    "dp": {
        "repeats": 1,
        "shadow": {"epochs": 1},
        "attack": {"epochs": 10},
        "defaults": {"dataset": "mnist5k", "epochs": 1, "batch_size": 64},
        "sweeps": {"lr": {"key": "lr", "values": [0.05]}},
    },
}
# The rules that train on the device (issue 25): what the workflow must route to GPUs.
TRAINING_RULES = {"train_shard", "mia_losses", "lira_shadows", "dp_shadow", "dp_train"}


def planned(workdir: Path) -> list[SimpleNamespace]:
    """Every job of a dry run through the Slurm profile and the example site file, copied as the README says
    (cp slurm/site.example.yaml slurm/site.yaml): rule, threads, resources."""
    shutil.copy(workdir / "slurm" / "site.example.yaml", workdir / "slurm" / "site.yaml")
    result = subprocess.run(
        [*SNAKEMAKE, "-n", "--cores", "8", "--profile", "slurm", "--profile", "slurm/site.yaml"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = []
    for block in re.split(r"\n(?=\S*\s*(?:local)?rule \w+:)", result.stdout):
        rule = re.match(r"\S*\s*(?:local)?rule (\w+):", block)
        if rule is None or rule.group(1) == "all":
            continue
        threads = re.search(r"\n\s+threads: (\d+)", block)
        resources = re.search(r"\n\s+resources: (.*)", block)
        assert resources, block
        res = dict(item.split("=", 1) for item in resources.group(1).split(", "))
        jobs.append(job(rule.group(1), int(res.pop("gpu", 0)), int(threads.group(1)) if threads else 1, **res))
    assert jobs, result.stdout[-3000:]
    return jobs


@pytest.mark.slow
@pytest.mark.parametrize(("device", "gpus"), [("auto", 1), ("cuda", 1), ("cpu", 0)])
def test_every_gpu_rule_goes_to_the_gpu_partition(tmp_path, device, gpus):
    copy_workflow(tmp_path, extra=("slurm",))
    config = tiny_config(**EVERY_STAGE, training={"device": device, "threads": 3, "memory_budget_mb": 256})
    write_config(tmp_path, config)
    jobs = planned(tmp_path)
    assert {j.rule.name for j in jobs} >= TRAINING_RULES  # every training stage is in the run
    gpu_rules = {j.rule.name for j in jobs if j.resources["gpu"] > 0}
    assert gpu_rules == (TRAINING_RULES if gpus else set())
    for j in jobs:
        if j.rule.name in TRAINING_RULES:
            assert j.resources["gpu"] == gpus and j.threads == 3, (j.rule.name, j.resources)
        if j.rule.name == "train_shard":  # 4 h; host memory is sized from the dataset once it exists
            # (sgd_privacy.train.hostmem; the numbers are checked on a real run in tests/test_hostmem.py)
            assert j.resources["mem_mb"] == "<TBD>" and j.resources["runtime"] == "240", j.resources
        assert "slurm_partition" not in j.resources  # left to the partition file: nothing overrides it
        assert j.resources["slurm_account"] == "myproject"
    # the plugin's partition choice from the example site file: GPU jobs to `gpu`, all others to `cpu`
    partitions = read_partition_config(SITE_EXAMPLE)
    routed = gpu_requests(jobs, partitions, None)
    assert routed == ({"gpu": dict.fromkeys(sorted(TRAINING_RULES), 1)} if gpus else {})
    from snakemake_executor_plugin_slurm.partitions import get_best_partition

    quiet = logging.getLogger("test")
    assert {
        j.rule.name: get_best_partition(partitions, j, quiet) for j in jobs if j.resources["gpu"] == 0
    } == dict.fromkeys({j.rule.name for j in jobs if j.resources["gpu"] == 0}, "cpu")
