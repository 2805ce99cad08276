"""Per-example losses of one training shard's runs on members, non-members and threshold rows."""

from sgd_privacy.analysis.intrinsic import read_T
from sgd_privacy.attacks.mia import shard_losses
from sgd_privacy.data import load_prepared
from sgd_privacy.io import write_table
from sgd_privacy.jobs import job_logging, torch_job

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
torch_job(smk.threads)
settings = smk.params.settings
steps = settings["steps"] if settings["steps"] is not None else [read_T(smk.input.convergence)]
table = shard_losses(
    smk.input.shard,
    load_prepared(smk.input.npz, smk.input.meta),
    steps,
    settings,
    device=smk.resources.device,
    budget_mb=smk.resources.budget_mb,
    progress=log.info,
)
write_table(table, smk.output[0])
