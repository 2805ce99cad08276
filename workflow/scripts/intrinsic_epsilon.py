"""Per-weight spreads, the intrinsic epsilon (theoretical and empirical sensitivity), and stability."""

from sgd_privacy.analysis.intrinsic import bound_for, epsilon_tables, read_T, stability_table
from sgd_privacy.io import read_json, write_table
from sgd_privacy.jobs import job_logging
from sgd_privacy.train.history import weights_at

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
s = smk.params.settings
T = read_T(smk.input.convergence)
n_train = read_json(smk.input.meta)["n_train"]
runs, weights = weights_at(smk.input.shards, T)
epsilon, per_weight, per_dataset = epsilon_tables(
    runs, weights, T, n_train, bound_for(smk.params.bound, n_train), s["bootstrap"], s["bootstrap_seed"]
)
stability = stability_table(
    runs, weights, s["stability_seeds"], s["stability_pairs"], s["stability_repeats"], s["pair_seed"]
)
write_table(epsilon, smk.output.epsilon)
write_table(per_weight, smk.output.per_weight)
write_table(per_dataset, smk.output.per_dataset)
write_table(stability, smk.output.stability)
log.info("%s", epsilon.iloc[0].to_dict())
