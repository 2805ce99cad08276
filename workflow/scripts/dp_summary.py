"""Summary tables of the DP study: per-epoch means and CIs, sweeps and outliers (the ledger: privacy_ledger.py)."""

import pandas as pd

from sgd_privacy.dp.summary import outlier_table, summary_table, sweep_table
from sgd_privacy.io import read_table, write_table
from sgd_privacy.jobs import job_logging

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
p = smk.params.study
runs = pd.concat([read_table(f) for f in smk.input.epochs], ignore_index=True)
examples = pd.concat([read_table(f) for f in smk.input.examples], ignore_index=True)
summary = summary_table(runs)
write_table(summary, smk.output.summary)
write_table(sweep_table(summary, p["sweeps"]), smk.output.sweeps)
write_table(outlier_table(examples, p["repeats"]), smk.output.outliers)
log.info("summary: %d rows", len(summary))
