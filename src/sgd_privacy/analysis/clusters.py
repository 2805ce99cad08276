"""UMAP embedding and k-means clustering of the weights at T (Figure 4 data)."""

from __future__ import annotations

import numpy as np
import pandas as pd


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
