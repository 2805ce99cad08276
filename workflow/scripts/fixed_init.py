"""Draw an experiment's one fixed initialisation, shared by every fixed-init shard."""

import numpy as np

from sgd_privacy.data import load_prepared
from sgd_privacy.io import atomic_path
from sgd_privacy.jobs import job_logging
from sgd_privacy.train.shard import fixed_init_flat, model_for

smk = snakemake  # noqa: F821 - injected by Snakemake
log = job_logging(smk.log[0])
model = model_for(smk.params.architecture, load_prepared(smk.input.npz, smk.input.meta))
init = fixed_init_flat(model, smk.params.seed)
with atomic_path(smk.output[0]) as tmp, open(tmp, "wb") as fh:
    np.save(fh, init)
log.info("fixed initialisation: %d parameters from seed %d", init.size, smk.params.seed)
