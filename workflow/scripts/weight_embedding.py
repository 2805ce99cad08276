"""UMAP of every run's weights at T and the k-means cluster spans per seed and replace index."""

from sgd_privacy.analysis.clusters import cache_umap_kernels
from sgd_privacy.analysis.intrinsic import embedding_tables, read_T
from sgd_privacy.io import write_table
from sgd_privacy.jobs import job_logging

NUMBA_CACHE = "resources/numba_cache"  # umap's compiled kernels, kept between jobs and runs (git-ignored)

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
log.info("%d umap kernels cached in %s", len(cache_umap_kernels(NUMBA_CACHE)), NUMBA_CACHE)
emb, spans = embedding_tables(smk.input.shards, read_T(smk.input.convergence), smk.params.settings["seed"])
write_table(emb, smk.output.umap)
write_table(spans, smk.output.kmeans)
log.info("k-means spans: %s", spans.groupby("by")["clusters"].mean().to_dict())
