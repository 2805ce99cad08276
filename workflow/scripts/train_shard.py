"""Train one shard of the grid and write its history table."""

import numpy as np

from sgd_privacy.data import check_batch_fits, load_prepared
from sgd_privacy.io import read_json, write_table
from sgd_privacy.jobs import job_logging, torch_job
from sgd_privacy.train.checkpoint import discard_checkpoint, job_checkpoints
from sgd_privacy.train.shard import run_shard

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
torch_job(smk.threads)
run = smk.params.run
check_batch_fits(read_json(smk.input.meta), run["training"]["batch_size"], smk.wildcards.experiment)
fixed = np.load(smk.input.fixed_init) if "fixed_init" in smk.input.keys() else None  # noqa: SIM118 - `in` on a Namedlist tests values
with job_checkpoints(smk.output[0], smk.resources.checkpoint_minutes) as (checkpoint, every_s):
    table = run_shard(
        smk.wildcards.experiment,
        run["training"],
        run["shard"],
        load_prepared(smk.input.npz, smk.input.meta),
        fixed,
        device=smk.resources.device,
        budget_mb=smk.resources.budget_mb,
        conv_path=smk.resources.conv_path,
        progress=log.info,
        checkpoint=checkpoint,
        checkpoint_s=every_s,
    )
    write_table(table, smk.output[0])
    discard_checkpoint(checkpoint)
