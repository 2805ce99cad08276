"""The noisy prediction API attacked by averaging repeated or nearby queries, with a DP-SGD model as contrast."""

from sgd_privacy.analysis.intrinsic import read_T
from sgd_privacy.data import load_prepared
from sgd_privacy.io import read_table, write_table
from sgd_privacy.jobs import job_logging
from sgd_privacy.perturbation.query_api import query_tables
from sgd_privacy.train.history import weights_at

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
delta = float(read_table(smk.input.epsilon)["delta"].iloc[0])
runs, weights = weights_at(smk.input.shards, read_T(smk.input.convergence))
table = query_tables(runs, weights, load_prepared(smk.input.npz, smk.input.meta), delta, smk.params.settings)
write_table(table, smk.output.table)
log.info("%d rows; DP-SGD epsilon %.3g", len(table), table["dp_epsilon"].dropna().iloc[0])
