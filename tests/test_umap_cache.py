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
shape = tuple(map(int, sys.argv[2:4])) if len(sys.argv) > 2 else (40, 6)
coords = umap_embedding(np.random.default_rng(3).normal(size=shape), seed=0)
hits = misses = 0
for name in UMAP_KERNEL_MODULES:
    for obj in vars(importlib.import_module(name)).values():
        if isinstance(obj, Dispatcher) and obj._can_compile:  # not the few compiled at import
            hits += sum(obj.stats.cache_hits.values())
            misses += sum(obj.stats.cache_misses.values())
print(json.dumps({"coords": coords.tolist(), "hits": hits, "misses": misses}))
"""


def in_new_process(*args: str) -> str:
    """Run a fresh interpreter that imports this checkout's package; its standard output."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, check=True, env=env).stdout


def embed_in_new_process(cache_dir: Path, rows: int = 40, columns: int = 6) -> dict:
    """Run EMBED on a rows x columns matrix in a fresh interpreter."""
    out = in_new_process("-c", EMBED, str(cache_dir), str(rows), str(columns))
    return json.loads(out.strip().splitlines()[-1])


# The set-up step in a fresh process (its command line, `python -m sgd_privacy.analysis.clusters DIR`), then an
# embedding with the code it compiled in that process.
WARM_UP = """
import json, sys
import numpy as np
from sgd_privacy.analysis.clusters import main, umap_embedding
main([sys.argv[1]])
print(json.dumps({"coords": umap_embedding(np.random.default_rng(3).normal(size=(40, 6)), seed=0).tolist()}))
"""


def test_the_set_up_warm_up_compiles_once_and_every_later_job_loads_the_same_code(tmp_path):
    """The Makefile's set-up step embeds a small matrix and so compiles umap's kernels into DIR; a job embedding
    weights of another shape (96 runs x 785 weights, like mnist5k_logreg's) then compiles nothing, and code
    loaded from the folder embeds bit-identically to the code compiled in the set-up's process."""
    cache = tmp_path / "numba_cache"
    said, coords = in_new_process("-W", "ignore", "-c", WARM_UP, str(cache)).strip().splitlines()[-2:]
    assert said.startswith("umap kernels: ") and int(said.split()[2]) >= 5, said  # knn, fuzzy set, layout kernels
    assert list(cache.glob("umap_*/utils.fast_knn_indices-*.nbi")), "the knn kernel was not written to the folder"
    job = embed_in_new_process(cache, rows=96, columns=785)
    assert job["misses"] == 0 and job["hits"] >= 5  # nothing compiled again: all loaded
    loaded = embed_in_new_process(cache)
    assert loaded["misses"] == 0
    assert loaded["coords"] == json.loads(coords)["coords"]  # the same compiled code: the same floats
