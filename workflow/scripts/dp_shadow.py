"""Train the shadow model of the neural-network attack and write its sorted confidence vectors."""

from sgd_privacy.data import load_prepared
from sgd_privacy.dp.study import shadow_features
from sgd_privacy.io import write_table
from sgd_privacy.jobs import job_logging, torch_job
from sgd_privacy.train.checkpoint import discard_checkpoint, job_checkpoints
from sgd_privacy.train.shard import pick_device

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
torch_job(smk.threads)
run = smk.params.run
with job_checkpoints(smk.output[0], smk.resources.checkpoint_minutes) as (checkpoint, every_s):
    table = shadow_features(
        run["architecture"],
        run["shadow"],
        load_prepared(smk.input.npz, smk.input.meta),
        run["split_seed"],
        smk.wildcards.dataset,
        device=str(pick_device(smk.resources.device)),
        split_sizes=run.get("split"),
        checkpoint=checkpoint,
        checkpoint_s=every_s,
        progress=log.info,
    )
    write_table(table, smk.output[0])
    discard_checkpoint(checkpoint)
log.info(
    "shadow %s/%s: %d rows, mean top confidence %s",
    smk.wildcards.dataset,
    smk.wildcards.model,
    len(table),
    table.groupby("member")["p1"].mean().round(4).to_dict(),
)
