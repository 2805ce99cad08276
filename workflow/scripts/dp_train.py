"""Train one (configuration, repeat) of the DP study, attacking it after every epoch."""

from sgd_privacy.data import load_prepared
from sgd_privacy.dp.study import run_job
from sgd_privacy.io import read_table, write_table
from sgd_privacy.jobs import job_logging, torch_job
from sgd_privacy.train.checkpoint import discard_checkpoint, job_checkpoints
from sgd_privacy.train.shard import pick_device

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
torch_job(smk.threads)
run = smk.params.run
with job_checkpoints(smk.output.epochs, smk.resources.checkpoint_minutes) as (checkpoint, every_s):
    epochs, examples = run_job(
        smk.wildcards.configuration,
        run["configuration"],
        int(smk.wildcards.repeat),
        load_prepared(smk.input.npz, smk.input.meta),
        read_table(smk.input.shadow),
        run["study"],
        device=str(pick_device(smk.resources.device)),
        progress=log.info,
        checkpoint=checkpoint,
        checkpoint_s=every_s,
    )
    write_table(epochs, smk.output.epochs)
    write_table(examples, smk.output.examples)
    discard_checkpoint(checkpoint)
