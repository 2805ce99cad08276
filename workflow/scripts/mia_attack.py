"""Yeom's attack with the seed known and hidden: per-run table, Table 6 summary, epsilon lower bounds."""

from sgd_privacy.attacks.mia import yeom_bounds, yeom_tables
from sgd_privacy.attacks.yeom import table6
from sgd_privacy.io import write_table
from sgd_privacy.jobs import job_logging

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
attacks = yeom_tables(smk.input)
summary = table6(attacks)
write_table(attacks, smk.output.attacks)
write_table(summary, smk.output.table6)
write_table(yeom_bounds(smk.input, smk.params.bounds), smk.output.bounds)
log.info("Table 6:\n%s", summary.to_string())
