"""The final report: one self-contained HTML page, every figure as PNG and SVG, every table as CSV."""

from sgd_privacy.jobs import job_logging
from sgd_privacy.report import build_from_files

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
files = {kind: list(paths) for kind, paths in smk.input.items()}
summary = build_from_files(files, smk.params.config, smk.output.html, smk.output.figures, smk.output.tables)
log.info("sections shown: %s; left out: %s", ", ".join(summary.shown), ", ".join(summary.absent) or "none")
log.info("%d figures, %d tables", len(summary.figures), len(summary.tables))
