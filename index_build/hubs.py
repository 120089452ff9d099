"""Hub penalties: each artist's mean similarity to its nearest neighbours, computed with FAISS."""

from __future__ import annotations

import faiss
import numpy as np

from core.vectors import FloatArray, hub_penalty

DEFAULT_HUB_K = 100  # neighbours whose mean similarity measures how much of a hub an artist is
DEFAULT_HUB_BETA = 0.5  # weight of the penalty (0 = rank by cosine alone)


def neighbour_similarities(vectors: FloatArray, k: int, batch_size: int = 8192) -> FloatArray:
    """(N, k) cosine of each unit vector to its k nearest other vectors (exact search)."""
    n, dim = vectors.shape
    k = max(1, min(k, n - 1))
    index = faiss.IndexFlatIP(dim)
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    out = np.zeros((n, k), dtype=np.float32)
    for begin in range(0, n, batch_size):
        sims, _ = index.search(vectors[begin : begin + batch_size], k + 1)
        out[begin : begin + batch_size] = sims[:, 1:]  # column 0 is the vector itself (or an identical one)
    return out


def penalties(vectors: FloatArray, k: int = DEFAULT_HUB_K, beta: float = DEFAULT_HUB_BETA) -> FloatArray:
    """The hub penalty of every vector among the others (zero when beta is 0 or there is one vector)."""
    if beta == 0 or len(vectors) < 2:
        return np.zeros(len(vectors), dtype=np.float32)
    return hub_penalty(neighbour_similarities(vectors, k), beta)
