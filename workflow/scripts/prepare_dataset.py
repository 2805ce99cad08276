"""Prepare one dataset: load raw files (or a custom dataset's file), preprocess, write arrays + sidecar."""

from sgd_privacy.data import SourceContext, prepare_custom, prepare_dataset, write_prepared
from sgd_privacy.jobs import job_logging

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
name, params = smk.wildcards.dataset, smk.params.dataset
if "custom" in params:
    prepared, sources = prepare_custom(name, params["custom"])
    description = f"custom dataset from {params['custom']['file']}"
    meta = write_prepared(name, prepared, smk.output.npz, smk.output.meta, description, sources)
else:
    prepared = prepare_dataset(name, params["options"], SourceContext(**params["source"]))
    meta = write_prepared(name, prepared, smk.output.npz, smk.output.meta)
log.info(
    "%s: %s", name, {k: meta[k] for k in ("n_train", "n_val", "n_test", "n_features", "n_classes", "max_row_norm")}
)
