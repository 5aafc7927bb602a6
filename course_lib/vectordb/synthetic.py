"""Clustered test vectors and recall@k.

Real embeddings are clustered (topics, languages, styles); i.i.d. Gaussian noise is not, and on it
every approximate index looks bad because no vector has a clearly nearer neighbour than the rest.
"""

from __future__ import annotations

import numpy as np


def clustered_vectors(n: int, dim: int, n_clusters: int = 100, spread: float = 0.35,
                      n_queries: int = 0, seed: int = 0, normalize: bool = True):
    """``n`` base vectors (and ``n_queries`` held-out queries) from a mixture of ``n_clusters`` blobs.

    Cluster centres are random unit directions; each point is its centre plus Gaussian noise of
    per-coordinate scale ``spread / sqrt(dim)`` and cluster sizes vary (Dirichlet weights), then
    everything is L2-normalised (``normalize=True``) like sentence embeddings.
    Returns ``xb`` (and ``(xb, xq)`` when ``n_queries > 0``), float32.
    """
    if n <= 0 or dim <= 0 or n_clusters <= 0 or n_queries < 0:
        raise ValueError(f"n, dim, n_clusters must be positive and n_queries >= 0, got {n, dim, n_clusters, n_queries}")
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = rng.dirichlet(np.full(n_clusters, 2.0))
    labels = rng.choice(n_clusters, size=n + n_queries, p=weights)
    x = centres[labels] + rng.standard_normal((n + n_queries, dim)) * (spread / np.sqrt(dim))
    if normalize:
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    x = x.astype(np.float32)
    return (x[:n], x[n:]) if n_queries else x


def knn_recall(found: np.ndarray, truth: np.ndarray, k: int | None = None) -> float:
    """Mean fraction of the true top-k ids that the index returned in its top-k (``(nq, k)`` id arrays)."""
    found, truth = np.asarray(found), np.asarray(truth)
    if found.shape[0] != truth.shape[0]:
        raise ValueError(f"found and truth need the same number of queries, got {found.shape[0]} and {truth.shape[0]}")
    k = k or truth.shape[1]
    hits = [len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth)]
    return float(np.mean(hits) / k)
