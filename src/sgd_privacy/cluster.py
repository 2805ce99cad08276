"""Slurm preflight: before any job is submitted, every GPU job's partition must have GPUs (read with sinfo)."""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .errors import SgdPrivacyError

# One line per partition and node group: name (the default one marked with '*') and the nodes' GRES.
SINFO_ARGS = ["sinfo", "--noheader", "--format=%P|%G"]
FIXES = (
    "Fix one of:\n"
    "  1. send the GPU jobs to a partition with GPUs: in slurm/site.yaml list it under `partitions:` with\n"
    "     `max_gpu: <GPUs per node>` (see slurm/site.example.yaml; `sinfo -o '%P %G'` shows each\n"
    "     partition's GPUs), and set no `slurm_partition` that sends GPU jobs elsewhere;\n"
    "  2. or train on CPUs: `training.device: cpu` in the config (jobs then request no GPU)."
)


class ClusterError(SgdPrivacyError):
    """A job cannot be scheduled as configured on this cluster; the message names the partition and the fixes."""


def gres_gpus(gres: str) -> int:
    """GPUs per node in one sinfo GRES field: 'gpu:1' -> 1, 'gpu:a100:4(S:0-1)' -> 4, '(null)' -> 0."""
    total = 0
    for item in re.split(r",(?![^(]*\))", gres.strip()):
        fields = re.sub(r"\(.*?\)", "", item).split(":")
        if fields[0] != "gpu":
            continue
        count = fields[-1] if len(fields) > 1 else "1"
        if not count.isdigit():  # gpu:<type> without a count means one
            count = "1"
        total += int(count)
    return total


def partition_gpus(sinfo: str) -> dict[str, int]:
    """Most GPUs any node of each partition has, from `sinfo --noheader --format=%P|%G` output."""
    gpus: dict[str, int] = {}
    for line in sinfo.splitlines():
        if not line.strip():
            continue
        name, _, gres = line.partition("|")
        name = name.strip().rstrip("*")
        gpus[name] = max(gpus.get(name, 0), gres_gpus(gres))
    return gpus


def default_partition(sinfo: str) -> str | None:
    """The partition sinfo marks as the default ('*'), or None."""
    for line in sinfo.splitlines():
        name = line.partition("|")[0].strip()
        if name.endswith("*"):
            return name.rstrip("*")
    return None


def read_sinfo() -> str:
    """`sinfo`'s partitions and their GRES; a ClusterError when sinfo cannot run."""
    try:
        done = subprocess.run(SINFO_ARGS, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ClusterError(f"cannot run `{' '.join(SINFO_ARGS)}` to check the GPU partitions: {exc}") from exc
    if done.returncode != 0:
        raise ClusterError(f"`{' '.join(SINFO_ARGS)}` failed: {done.stderr.strip()}")
    return done.stdout


def job_gpus(resources: Any) -> int:
    """GPUs a job requests (its `gpu` resource; 0 when absent)."""
    value = resources.get("gpu") or 0
    return int(value) if str(value).isdigit() else 0


class KnownResources:
    """`job` with only the resources known before it runs: Snakemake defers those sized from inputs that do not
    exist yet (e.g. `mem_mb` of a training job, from its dataset) as '<TBD>', which the plugin's partition
    scoring cannot compare; it scores the job on the others (GPUs, threads, runtime) here, and on all of them
    when it submits the job."""

    def __init__(self, job: Any) -> None:
        self._job = job
        self.resources = {k: v for k, v in dict(job.resources.items()).items() if str(v) != "<TBD>"}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._job, name)


def job_partition(job: Any, partitions: list[Any] | None, default: str | None) -> str | None:
    """The partition the Slurm plugin sends `job` to: its `slurm_partition` resource, else the best fit among
    `partitions` (the plugin's partition config, with the plugin's own scoring), else the default partition."""
    requested = job.resources.get("slurm_partition")
    if requested:
        return str(requested)
    if partitions:
        from snakemake_executor_plugin_slurm.partitions import get_best_partition

        best = get_best_partition(partitions, KnownResources(job), logging.getLogger("sgd_privacy.cluster"))
        if best:
            return str(best)
    return default


def gpu_requests(jobs: Iterable[Any], partitions: list[Any] | None, default: str | None) -> dict[str, dict[str, int]]:
    """Partition -> rule -> most GPUs one of its jobs requests, for every job that requests a GPU."""
    requests: dict[str, dict[str, int]] = {}
    for job in jobs:
        gpus = job_gpus(job.resources)
        if gpus > 0:
            partition = job_partition(job, partitions, default) or "(none: Slurm's default)"
            per_rule = requests.setdefault(partition, {})
            per_rule[job.rule.name] = max(per_rule.get(job.rule.name, 0), gpus)
    return requests


def check_gpu_partitions(requests: Mapping[str, Mapping[str, int]], gpus: Mapping[str, int]) -> None:
    """Raise a ClusterError naming every partition that cannot give a GPU job its GPUs, and the two fixes."""
    problems = []
    for partition, rules in sorted(requests.items()):
        wanted = ", ".join(f"{rule} ({n} GPU{'s' if n > 1 else ''})" for rule, n in sorted(rules.items()))
        have = gpus.get(partition)
        if have is None:
            known = ", ".join(sorted(gpus)) or "none"
            problems.append(f"partition {partition!r} does not exist (sinfo lists: {known}); it would get {wanted}")
        elif have < max(rules.values()):
            has = "no GPUs" if have == 0 else f"only {have} GPU{'s' if have > 1 else ''} per node"
            problems.append(f"partition {partition!r} has {has} (sinfo's GRES), but would get jobs of {wanted}")
    if problems:
        raise ClusterError(
            "Slurm preflight: these GPU jobs cannot run where they would be sent, so nothing was submitted:\n  - "
            + "\n  - ".join(problems)
            + "\n"
            + FIXES
        )


def read_partition_config(path: str | Path | None) -> list[Any] | None:
    """The Slurm plugin's partition config (`slurm-partition-config`), parsed by the plugin; None without one."""
    if not path:
        return None
    from snakemake_executor_plugin_slurm.partitions import read_partition_file

    return list(read_partition_file(Path(path)))


def slurm_preflight(jobs: Iterable[Any], partition_config: str | Path | None, sinfo: str | None = None) -> None:
    """Stop before any submission when a GPU job would go to a partition without (enough) GPUs."""
    text = read_sinfo() if sinfo is None else sinfo
    requests = gpu_requests(jobs, read_partition_config(partition_config), default_partition(text))
    check_gpu_partitions(requests, partition_gpus(text))
