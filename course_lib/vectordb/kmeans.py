"""Lloyd's k-means, the trainer behind IVF coarse quantisers and PQ codebooks (faiss ``Clustering``).

Initialise with ``k`` distinct training points drawn at random, then alternate
*assign* (nearest centroid, one :func:`exact_search` with k=1) and *update* (mean of each cluster).
An empty cluster steals half of the largest one (a perturbed copy of its centroid), as faiss does.
``spherical=True`` renormalises centroids after each update (faiss does this for inner-product IVF).
"""

from __future__ import annotations

import numpy as np
import torch

from course_lib.vectordb.checks import as_vectors, check_metric, check_positive


def assign(x: np.ndarray, centroids: np.ndarray, metric: str = "l2", batch: int = 4096) -> np.ndarray:
    """Index of the nearest centroid of every row of ``x``, shape ``(N,)`` (argmax of one GEMM per batch)."""
    half_sq = 0.5 * np.einsum("kd,kd->k", centroids, centroids)      # (k,)  ‖c‖²/2; ‖x‖² does not change the argmin
    out = np.empty(x.shape[0], np.int64)
    for start in range(0, x.shape[0], batch):
        sim = x[start:start + batch] @ centroids.T                    # (B, k)
        out[start:start + batch] = (sim if metric == "ip" else sim - half_sq).argmax(1)
    return out


def kmeans(x, k: int, niter: int = 25, metric: str = "l2", spherical: bool = False, seed: int = 0) -> np.ndarray:
    """Train ``k`` centroids on ``x`` ``(N, d)``; returns ``(k, d)`` float32."""
    x = as_vectors(x, None)
    k, niter = check_positive(k, "k"), check_positive(niter, "niter")
    check_metric(metric)
    if x.shape[0] < k:
        raise ValueError(f"k-means needs at least k={k} training vectors, got {x.shape[0]}")
    rng = np.random.default_rng(seed)
    centroids = x[rng.choice(x.shape[0], size=k, replace=False)].copy()
    for _ in range(niter):
        labels = assign(x, centroids, metric)
        counts = np.bincount(labels, minlength=k).astype(np.float32)     # (k,)
        sums = torch.zeros(k, x.shape[1]).index_add_(0, torch.from_numpy(labels), torch.from_numpy(x)).numpy()  # (k, d)
        full = counts > 0
        centroids[full] = sums[full] / counts[full, None]
        for empty in np.flatnonzero(~full):                               # split the largest cluster
            big = int(np.argmax(counts))
            noise = rng.standard_normal(x.shape[1]).astype(np.float32) * 1e-4
            centroids[empty], centroids[big] = centroids[big] + noise, centroids[big] - noise
            counts[empty] = counts[big] = counts[big] / 2
        if spherical:
            centroids /= np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    return centroids
