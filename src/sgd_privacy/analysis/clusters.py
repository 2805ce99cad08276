"""UMAP embedding and k-means clustering of the weights at T (Figure 4 data)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# umap-learn's modules whose numba kernels are declared without `cache=True`: compiled again by every
# process (about 11 CPU seconds per embedding job) unless `cache_umap_kernels` gives them a folder.
UMAP_KERNEL_MODULES = ("umap.distances", "umap.utils", "umap.umap_", "umap.layouts", "umap.spectral", "umap.sparse")


def cache_umap_kernels(cache_dir: str | Path) -> list[str]:
    """Keep umap's uncached numba kernels compiled in cache_dir (created if missing); returns their names.

    Call before the first embedding of the process; a later call changes nothing. Kernels that umap and
    pynndescent already cache stay where numba keeps them. Numba writes each cache file under a unique
    temporary name and renames it into place, so jobs sharing the folder at once at worst compile a
    kernel twice; the embedding is bit-identical either way (the same compiled code).
    """
    import umap  # noqa: F401 - imported first: its own cached kernels keep numba's default folder
    from numba.core import config as numba_config
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    config: Any = numba_config  # numba's settings module, untyped
    path = Path(cache_dir).resolve()
    path.mkdir(parents=True, exist_ok=True)
    previous, config.CACHE_DIR = config.CACHE_DIR, str(path)
    enabled = []
    try:
        for name in UMAP_KERNEL_MODULES:
            for attr, obj in vars(importlib.import_module(name)).items():
                # those with explicit signatures were compiled at import and compile nothing more
                uncached = isinstance(getattr(obj, "_cache", None), NullCache) and getattr(obj, "_can_compile", False)
                if isinstance(obj, Dispatcher) and uncached:
                    obj.enable_caching()  # the cache's folder is fixed here, from config.CACHE_DIR
                    enabled.append(f"{name}.{attr}")
    finally:
        config.CACHE_DIR = previous
    return enabled


# In the kernel folder: how many kernels the set-up compiled there and the embedding of `warm_up_weights()`
# it made with that code (tests/test_umap_cache.py compares a later process's embedding with it).
WARM_UP_RECORD = "warm_up.json"


def warm_up_weights() -> np.ndarray:
    """The small matrix the set-up embeds (40 runs x 6 weights, standard normal, seed 0)."""
    return np.random.default_rng(0).normal(size=(40, 6))


def warm_umap_kernels(cache_dir: str | Path) -> int:
    """Compile, once at set-up, the numba kernels an embedding job needs; returns how many umap kernels were
    compiled into cache_dir (0 when all were cached already).

    Importing umap compiles pynndescent's own cached kernels into the installed package (about 20 CPU
    seconds in a fresh environment); a small embedding then compiles umap's uncached ones into cache_dir
    (`cache_umap_kernels`). Numba specialises kernels on argument types, not sizes, so the embedding jobs'
    float64 weight matrices of any shape load them from the caches instead of compiling in every job.
    When it compiled any (or the folder has no record yet) it writes WARM_UP_RECORD: the count and the
    embedding's coordinates, made by the code it has just compiled.
    """
    from numba.core.dispatcher import Dispatcher

    from ..io import write_json

    names = cache_umap_kernels(cache_dir)
    coords = umap_embedding(warm_up_weights(), seed=0)
    kernels = [getattr(importlib.import_module(name.rsplit(".", 1)[0]), name.rsplit(".", 1)[1]) for name in names]
    compiled = sum(sum(k.stats.cache_misses.values()) for k in kernels if isinstance(k, Dispatcher))
    record = Path(cache_dir) / WARM_UP_RECORD
    if compiled or not record.exists():
        write_json({"compiled": compiled, "coords": coords.tolist()}, record)
    return compiled


def umap_embedding(weights: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """2-D UMAP coordinates of each run's weights."""
    import umap

    n_neighbors = min(n_neighbors, len(weights) - 1)
    reducer = umap.UMAP(n_neighbors=n_neighbors, min_dist=min_dist, n_components=2, random_state=seed)
    return reducer.fit_transform(np.asarray(weights, dtype=np.float64))


def kmeans_spans(weights: np.ndarray, runs: pd.DataFrame, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """k-means on raw weights with k = max(runs per seed, runs per replace index); returns the labels
    and, per seed and per replace index, how many clusters its runs span (none for a grid with a
    single seed or a single dataset, where the contrast does not exist)."""
    from sklearn.cluster import KMeans

    if runs["seed"].nunique() < 2 or runs["replace_index"].nunique() < 2:  # nothing to contrast
        return np.full(len(runs), -1), pd.DataFrame(columns=["by", "value", "clusters", "k"])
    k = int(max(runs.groupby("seed").size().max(), runs.groupby("replace_index").size().max()))
    k = min(k, len(weights))
    labels = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(np.asarray(weights, dtype=np.float64))
    frame = runs.assign(cluster=labels)
    spans = pd.concat(
        [
            frame.groupby("seed")["cluster"]
            .nunique()
            .rename("clusters")
            .reset_index()
            .assign(by="seed")
            .rename(columns={"seed": "value"}),
            frame.groupby("replace_index")["cluster"]
            .nunique()
            .rename("clusters")
            .reset_index()
            .assign(by="replace_index")
            .rename(columns={"replace_index": "value"}),
        ],
        ignore_index=True,
    )
    spans["k"] = k
    return labels, spans[["by", "value", "clusters", "k"]]


def main(argv: list[str] | None = None) -> None:
    """`python -m sgd_privacy.analysis.clusters DIR`: warm_umap_kernels(DIR) (the Makefile's set-up runs it)."""
    import argparse

    parser = argparse.ArgumentParser(description=warm_umap_kernels.__doc__)
    parser.add_argument("cache_dir", help="umap's kernel cache of the workflow (resources/numba_cache)")
    args = parser.parse_args(argv)
    print(f"umap kernels: {warm_umap_kernels(args.cache_dir)} compiled into {args.cache_dir}, the rest loaded")


if __name__ == "__main__":
    main()
