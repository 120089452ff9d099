"""Hub penalties and the build's all-artist search: each artist's nearest neighbours by cosine."""

from __future__ import annotations

import faiss
import numpy as np
from tqdm import tqdm

from core.vectors import FloatArray, hub_penalty

DEFAULT_HUB_K = 100  # neighbours whose mean similarity measures how much of a hub an artist is
DEFAULT_HUB_BETA = 0.5  # weight of the penalty (0 = rank by cosine alone)


def search_all(
    index: faiss.Index, queries: FloatArray, k: int, batch_size: int = 16384, progress: bool = False, desc: str = ""
) -> tuple[FloatArray, np.ndarray]:
    """Top k of every query (N, d) in `index`, in batches: scores (N, k) and rows (N, k)."""
    n = len(queries)
    scores = np.empty((n, k), dtype=np.float32)
    rows = np.empty((n, k), dtype=np.int64)
    for begin in tqdm(range(0, n, batch_size), desc=desc, unit="batch", disable=not progress):
        batch = np.ascontiguousarray(queries[begin : begin + batch_size], dtype=np.float32)
        scores[begin : begin + batch_size], rows[begin : begin + batch_size] = index.search(batch, k)
    return scores, rows


def self_found(scores: FloatArray, hits: np.ndarray, queries: FloatArray, rows: np.ndarray) -> np.ndarray:
    """(Q,) whether each query, the vector of index row `rows`, found itself first (or a tie with it)."""
    self_score = np.einsum("ij,ij->i", queries, queries)
    return np.asarray((hits[:, 0] == rows) | (scores[:, 0] >= self_score - 1e-5))


def penalties_from(neighbour_sims: FloatArray, beta: float) -> FloatArray:
    """The hub penalty of every vector from its cosines (N, k) to its nearest others."""
    if beta == 0 or neighbour_sims.shape[1] == 0:
        return np.zeros(len(neighbour_sims), dtype=np.float32)
    return hub_penalty(neighbour_sims, beta)


def penalties(vectors: FloatArray, k: int = DEFAULT_HUB_K, beta: float = DEFAULT_HUB_BETA) -> FloatArray:
    """The hub penalty of every vector among the others, by exact search (zero when beta is 0)."""
    if beta == 0 or len(vectors) < 2:
        return np.zeros(len(vectors), dtype=np.float32)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    sims, _ = search_all(index, vectors, min(k, len(vectors) - 1) + 1)
    return penalties_from(sims[:, 1:], beta)  # column 0 is the vector itself (or an identical one)


HUB_SAMPLE_NEIGHBOURS = 10  # neighbours per artist in the sampled estimate


def sampled_penalties(
    vectors: FloatArray, k: int = DEFAULT_HUB_K, beta: float = DEFAULT_HUB_BETA, progress: bool = False, seed: int = 0
) -> FloatArray:
    """Hub penalties estimated against a random sample, for catalogues too large to search whole.

    With a sample of m = N * j / k artists (j = `HUB_SAMPLE_NEIGHBOURS`), an artist's j-th
    nearest sampled artist stands, in expectation, where its k-th nearest artist stands in the
    full catalogue, so the mean cosine to its j nearest sampled artists estimates the mean to
    its k nearest ones at a tenth of the cost. The sample is searched with a small HNSW graph.
    """
    n, dim = vectors.shape
    j = HUB_SAMPLE_NEIGHBOURS
    if beta == 0 or n < 2:
        return np.zeros(n, dtype=np.float32)
    m = min(n, max(j + 1, int(np.ceil(n * j / k))))
    sample = np.sort(np.random.default_rng(seed).choice(n, m, replace=False))
    graph = faiss.IndexHNSWFlat(dim, 16, faiss.METRIC_INNER_PRODUCT)
    graph.add(np.ascontiguousarray(vectors[sample], dtype=np.float32))
    graph.hnsw.efSearch = 64
    sims, rows = search_all(graph, vectors, j + 1, progress=progress, desc="hub sample")
    keep = sample[np.maximum(rows, 0)] != np.arange(n)[:, None]  # an artist is not its own neighbour
    keep[keep.all(axis=1), -1] = False
    return hub_penalty(np.where(rows >= 0, sims, 0)[keep].reshape(n, j), beta)
