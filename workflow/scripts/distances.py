"""Weight distances over training steps per pair kind, the bolt-on bound, and all distances at T."""

from sgd_privacy.analysis.intrinsic import bound_for, distance_tables, read_T, weights_over_time
from sgd_privacy.io import read_json, write_table
from sgd_privacy.jobs import job_logging

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
T = read_T(smk.input.convergence)
runs, steps, weights = weights_over_time(smk.input.shards)
if T not in set(steps.tolist()):
    raise ValueError(f"no weights were kept at T = {T}; add it to the experiment's log_weights_at")
bound = bound_for(smk.params.bound, read_json(smk.input.meta)["n_train"])
over_t, at_T = distance_tables(
    runs, steps, weights, T, smk.params.pairs["n_pairs"], smk.params.pairs["pair_seed"], bound
)
write_table(over_t, smk.output.over_t)
write_table(at_T, smk.output.at_T)
log.info("%d runs, %d steps; at T = %d: %s", len(runs), len(steps), T, at_T.groupby("kind")["distance"].max().to_dict())
