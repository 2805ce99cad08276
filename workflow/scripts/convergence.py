"""Per-run and per-experiment convergence points from the shard histories."""

from sgd_privacy.io import write_table
from sgd_privacy.jobs import job_logging
from sgd_privacy.train.history import convergence_tables, read_histories

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
runs, summary = convergence_tables(read_histories(smk.input), **smk.params.convergence)
write_table(runs, smk.output.runs)
write_table(summary, smk.output.summary)
log.info("%s", summary.to_dict("records"))
