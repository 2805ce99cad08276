"""umap's numba kernels compiled once, by the set-up, into resources/numba_cache: a later process loads them and
embeds identically to the code the set-up compiled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sgd_privacy.analysis.clusters import WARM_UP_RECORD
from workflow_helpers import NUMBA_CACHE

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
CACHE = ROOT / NUMBA_CACHE  # the Makefile's set-up: python -m sgd_privacy.analysis.clusters DIR

# One job's embedding in a fresh process: coordinates, and numba's cache hits and misses of umap's kernels.
EMBED = """
import json, sys
import numpy as np
from numba.core.dispatcher import Dispatcher
from sgd_privacy.analysis.clusters import UMAP_KERNEL_MODULES, cache_umap_kernels, umap_embedding, warm_up_weights
import importlib
cache_umap_kernels(sys.argv[1])
weights = np.random.default_rng(3).normal(size=tuple(map(int, sys.argv[2:4]))) if len(sys.argv) > 2 else warm_up_weights()
coords = umap_embedding(weights, seed=0)
hits = misses = 0
for name in UMAP_KERNEL_MODULES:
    for obj in vars(importlib.import_module(name)).values():
        if isinstance(obj, Dispatcher) and obj._can_compile:  # not the few compiled at import
            hits += sum(obj.stats.cache_hits.values())
            misses += sum(obj.stats.cache_misses.values())
print(json.dumps({"coords": coords.tolist(), "hits": hits, "misses": misses}))
"""


def embed_in_new_process(cache_dir: Path, *shape: int) -> dict:
    """Run EMBED in a fresh interpreter that imports this checkout's package: on a matrix of `shape`, or on
    the set-up's `warm_up_weights()` when no shape is given."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, "-c", EMBED, str(cache_dir), *map(str, shape)]
    out = subprocess.run(args, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_the_set_up_warm_up_compiles_once_and_every_later_job_loads_the_same_code():
    """The Makefile's set-up step (`python -m sgd_privacy.analysis.clusters resources/numba_cache`) embeds a small
    matrix and so compiles umap's kernels into that folder, recording how many and the coordinates its freshly
    compiled code gave; a job embedding weights of another shape (96 runs x 785 weights, like
    mnist5k_logreg's) then compiles nothing, and a process loading the kernels embeds the set-up's matrix to
    the same floats. (The set-up's own compile is not redone here: about 25 CPU seconds.)"""
    record_file = CACHE / WARM_UP_RECORD
    assert record_file.exists(), (
        f"no {record_file.relative_to(ROOT)}: run the set-up's warm-up (`make test` and `make test-fast` do; "
        "or `.venv/bin/python -m sgd_privacy.analysis.clusters resources/numba_cache`)"
    )
    record = json.loads(record_file.read_text())  # compiled: 6 in a fresh clone (0 where the folder was warm)
    assert list(CACHE.glob("umap_*/utils.fast_knn_indices-*.nbi")), "the knn kernel was not written to the folder"
    job = embed_in_new_process(CACHE, 96, 785)
    assert job["misses"] == 0 and job["hits"] >= 5  # nothing compiled again: all loaded
    loaded = embed_in_new_process(CACHE)
    assert loaded["misses"] == 0
    assert loaded["coords"] == record["coords"]  # the same compiled code: the same floats
