# Cluster sizing of group jobs. Rules in a `group:` (one Slurm job per connected group) take
# `group_slot=1`, a resource limited to 1 per group job (scope local) on a cluster: a group job
# runs its members one after another and asks for the largest member's CPUs and memory (and the
# sum of their runtimes), not the sum of all. A plain local run leaves it unlimited, so there
# the members still run side by side.


resource_scopes:
    group_slot="local",


if not workflow.is_main_process:
    # inside a cluster job: the group's members run one at a time (no hooks run there)
    workflow.register_resource("group_slot", 1)


onstart:
    # the main process, once the executor is known: on a cluster, size group jobs for serial members
    if not workflow.local_exec:
        workflow.register_resource("group_slot", 1)
