"""Bolt-on output perturbation of an experiment's runs at T: test accuracy versus epsilon per variant."""

from sgd_privacy.analysis.intrinsic import read_T
from sgd_privacy.data import load_prepared
from sgd_privacy.io import read_table, write_table
from sgd_privacy.jobs import job_logging
from sgd_privacy.perturbation.bolt_on import intrinsic_sigmas, utility_table
from sgd_privacy.train.history import weights_at

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
s = smk.params.settings
row = read_table(smk.input.epsilon).iloc[0].to_dict()
runs, weights = weights_at(smk.input.shards, read_T(smk.input.convergence))
arrays = load_prepared(smk.input.npz, smk.input.meta)
sigmas, sources = intrinsic_sigmas(row, runs, weights)
table, per_run = utility_table(
    runs,
    weights,
    arrays["x_test"],
    arrays["y_test"],
    row,
    sigmas,
    sources,
    s["epsilons"],
    s["noise_draws"],
    s["seed"],
    s["calibration"],
)
write_table(table, smk.output.table)
write_table(per_run, smk.output.runs)
log.info("sigma_intrinsic %s; %d variant rows", sigmas, len(table))
