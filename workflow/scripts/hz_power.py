"""The Henze-Zirkler test's power against the number of seeds: simulated replicates and the power table."""

from sgd_privacy.analysis.hz_power import power_table, simulate
from sgd_privacy.io import write_table
from sgd_privacy.jobs import job_logging

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
s = smk.params.settings
replicates = simulate(s["dimensions"], s["seeds"], s["replicates"], s["seed"])
power = power_table(replicates)
write_table(replicates, smk.output.replicates)
write_table(power, smk.output.power)
log.info("%s", power.to_dict("records"))
