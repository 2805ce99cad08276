"""The privacy ledger: every DP model the pipeline trained, composed per dataset (basic and RDP)."""

import pandas as pd

from sgd_privacy.dp.ledger import ledger_runs, ledger_table, query_stage_runs
from sgd_privacy.dp.summary import final_runs
from sgd_privacy.io import read_table, write_table
from sgd_privacy.jobs import job_logging

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
p = smk.params.ledger
dp = final_runs(pd.concat([read_table(f) for f in smk.input.epochs], ignore_index=True)) if smk.input.epochs else None
query = pd.concat([read_table(f) for f in smk.input.query], ignore_index=True) if smk.input.query else None
ledger = ledger_table(
    ledger_runs(dp, query_stage_runs(query, p["datasets"]) if query is not None else None), p["delta"]
)
write_table(ledger, smk.output.ledger)
log.info("ledger:\n%s", ledger.to_string(index=False))
