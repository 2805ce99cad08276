"""umap's numba kernels compiled once into a folder: a later process loads them and embeds identically."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# One job's embedding in a fresh process: coordinates, and numba's cache hits and misses of umap's kernels.
EMBED = """
import json, sys
import numpy as np
from numba.core.dispatcher import Dispatcher
from sgd_privacy.analysis.clusters import UMAP_KERNEL_MODULES, cache_umap_kernels, umap_embedding
import importlib
cache_umap_kernels(sys.argv[1])
coords = umap_embedding(np.random.default_rng(3).normal(size=(40, 6)), seed=0)
hits = misses = 0
for name in UMAP_KERNEL_MODULES:
    for obj in vars(importlib.import_module(name)).values():
        if isinstance(obj, Dispatcher) and obj._can_compile:  # not the few compiled at import
            hits += sum(obj.stats.cache_hits.values())
            misses += sum(obj.stats.cache_misses.values())
print(json.dumps({"coords": coords.tolist(), "hits": hits, "misses": misses}))
"""


def embed_in_new_process(cache_dir: Path) -> dict:
    """Run EMBED in a fresh interpreter that imports this checkout's package."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run(
        [sys.executable, "-c", EMBED, str(cache_dir)], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_loads_the_umap_kernels_and_embeds_bit_identically(tmp_path):
    cache = tmp_path / "numba_cache"
    first = embed_in_new_process(cache)
    assert first["misses"] >= 5  # compiled: the knn, the fuzzy set and the layout kernels
    assert list(cache.glob("umap_*/utils.fast_knn_indices-*.nbi")), "the knn kernel was not written to the folder"
    second = embed_in_new_process(cache)
    assert second["misses"] == 0 and second["hits"] >= 5  # nothing compiled again: all loaded
    assert second["coords"] == first["coords"]  # the same compiled code: the same floats
