"""The final report: one self-contained HTML page, every figure as PNG and SVG, every table as CSV."""

from pathlib import Path

from sgd_privacy.jobs import job_logging
from sgd_privacy.report import build_from_files
from sgd_privacy.report.banner import collect_provenance

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
files = {kind: list(paths) for kind, paths in smk.input.items()}
shards = files.pop("shards", [])  # read for their device metadata only
provenance = collect_provenance(smk.params.config_files, Path(smk.scriptdir).parents[1], shards)
summary = build_from_files(
    files, smk.params.config, smk.output.html, smk.output.figures, smk.output.tables, provenance=provenance
)
log.info("sections shown: %s; left out: %s", ", ".join(summary.shown), ", ".join(summary.absent) or "none")
log.info("%d figures, %d tables", len(summary.figures), len(summary.tables))
