"""Henze-Zirkler, Shapiro-Wilk, Anderson-Darling (Laplace) and tail index of the weights at T."""

from sgd_privacy.analysis.intrinsic import distribution_tables, read_T
from sgd_privacy.io import write_table
from sgd_privacy.jobs import job_logging
from sgd_privacy.train.history import weights_at

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
s = smk.params.settings
T = read_T(smk.input.convergence)
runs, weights = weights_at(smk.input.shards, T)
summary, per_weight, examples = distribution_tables(
    runs, weights, T, s["distribution_datasets"], s["seed"], s["ad_simulations"]
)
write_table(summary, smk.output.summary)
write_table(per_weight, smk.output.per_weight)
write_table(examples, smk.output.examples)
log.info("%s", summary.to_dict("records"))
