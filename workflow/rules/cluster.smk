# Cluster sizing of group jobs. Rules in a `group:` (one Slurm job per connected group) take
# `group_slot=1`, a resource limited to 1 per group job (scope local) on a cluster: a group job
# runs its members one after another and asks for the largest member's CPUs and memory (and the
# sum of their runtimes), not the sum of all. A plain local run leaves it unlimited, so there
# the members still run side by side.
import os

from sgd_privacy.cluster import slurm_preflight
from sgd_privacy.status import write_plan


resource_scopes:
    group_slot="local",


if not workflow.is_main_process:
    # inside a cluster job: the group's members run one at a time (no hooks run there)
    workflow.register_resource("group_slot", 1)


def slurm_partition_config():
    """The Slurm plugin's partition file (slurm-partition-config, or $SNAKEMAKE_SLURM_PARTITIONS), or None."""
    settings = workflow.executor_settings
    return getattr(settings, "partition_config", None) or os.environ.get("SNAKEMAKE_SLURM_PARTITIONS")


onstart:
    # The main process, once the DAG is built and before any job starts or is submitted (not in a
    # dry run, not with --no-hooks). 1. On a cluster, size group jobs for serial members. 2. On
    # Slurm, stop now if a GPU job would go to a partition without GPUs (sinfo). 3. Record the
    # jobs of this run for `python -m sgd_privacy.status`.
    if not workflow.local_exec:
        workflow.register_resource("group_slot", 1)
    if workflow.executor_plugin.name == "slurm":
        slurm_preflight(workflow.dag.needrun_jobs(), slurm_partition_config())
    write_plan(workflow.dag.needrun_jobs())
