"""UMAP of every run's weights at T and the k-means cluster spans per seed and replace index."""

from sgd_privacy.analysis.intrinsic import embedding_tables, read_T
from sgd_privacy.io import write_table
from sgd_privacy.jobs import job_logging

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
emb, spans = embedding_tables(smk.input.shards, read_T(smk.input.convergence), smk.params.settings["seed"])
write_table(emb, smk.output.umap)
write_table(spans, smk.output.kmeans)
log.info("k-means spans: %s", spans.groupby("by")["clusters"].mean().to_dict())
