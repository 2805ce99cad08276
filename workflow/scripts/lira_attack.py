"""LiRA scores (online and offline, seed known and hidden), ROC curves, summary and epsilon lower bounds."""

from sgd_privacy.attacks.lira import attack_scores, roc_table, summary_table
from sgd_privacy.attacks.mia import lira_bounds, read_shadows
from sgd_privacy.io import write_table
from sgd_privacy.jobs import job_logging

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
s = smk.params.settings
seeds, confidence, member = read_shadows(smk.input)
scores = attack_scores(confidence, member, seeds.tolist(), s["fixed_variance"])
summary = summary_table(scores, s["fprs"], s["confidence"])
write_table(scores, smk.output.scores)
write_table(roc_table(scores), smk.output.roc)
write_table(summary, smk.output.summary)
write_table(lira_bounds(scores, s, (seeds, confidence, member), s["fixed_variance"]), smk.output.bounds)
log.info("LiRA summary:\n%s", summary.to_string())
