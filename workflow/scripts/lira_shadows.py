"""Train one seed's LiRA runs (one per subset of the pool) and store their confidences on the pool."""

from sgd_privacy.attacks.mia import lira_shadow_table
from sgd_privacy.data import load_prepared
from sgd_privacy.io import write_table
from sgd_privacy.jobs import job_logging, torch_job
from sgd_privacy.train.checkpoint import discard_checkpoint, job_checkpoints

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
torch_job(smk.threads)
with job_checkpoints(smk.output[0], smk.resources.checkpoint_minutes) as (checkpoint, every_s):
    table = lira_shadow_table(
        smk.params.run["training"],
        load_prepared(smk.input.npz, smk.input.meta),
        int(smk.wildcards.seed),
        smk.params.run["lira"],
        device=smk.resources.device,
        budget_mb=smk.resources.budget_mb,
        progress=log.info,
        checkpoint=checkpoint,
        checkpoint_s=every_s,
    )
    write_table(table, smk.output[0])
    discard_checkpoint(checkpoint)
