"""Retrieval metrics exactly as the design defines them: nDCG@k with a bootstrap CI, and Gini@k."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def ndcg_at_k(relevance: npt.ArrayLike, n_relevant: npt.ArrayLike, k: int) -> np.ndarray:
    """Per-query nDCG@k with binary relevance.

    relevance: (Q, <=k) booleans, whether the result at each rank is relevant (rank 1 first).
    n_relevant: (Q,) how many relevant items each query has in the universe.
    DCG = sum_r rel_r / log2(r + 1); the ideal DCG puts min(n_relevant, k) hits first.
    A query with no relevant candidate scores 0.
    """
    rel = np.asarray(relevance, dtype=np.float64)[:, :k]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))  # rank r = 1..k -> 1/log2(r+1)
    dcg = rel @ discounts[: rel.shape[1]]
    ideal_hits = np.minimum(np.asarray(n_relevant), k).astype(int)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[ideal_hits]
    return np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)


def bootstrap_ci(
    values: npt.ArrayLike, resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean over queries."""
    vals = np.asarray(values, dtype=np.float64)
    if vals.size == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for i in range(resamples):
        means[i] = vals[rng.integers(0, vals.size, vals.size)].mean()
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def gini(counts: npt.ArrayLike) -> float:
    """Gini coefficient of non-negative counts: 0 when all are equal, near 1 when one item has all."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = x.size, x.sum()
    if n == 0 or total == 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float((2 * (ranks * x).sum()) / (n * total) - (n + 1) / n)


def gini_at_k(retrieved: npt.ArrayLike, universe: npt.ArrayLike) -> float:
    """Gini@k: how unevenly the universe's artists appear across all top-k lists.

    retrieved: (Q, k) artist rows (-1 = no result); universe: the rows of every universe artist,
    each counted, retrieved or not.
    """
    ids = np.asarray(retrieved).ravel()
    rows = np.asarray(universe)
    size = max(int(rows.max(initial=-1)), int(ids.max(initial=-1))) + 1
    counts = np.bincount(ids[ids >= 0], minlength=size)
    return gini(counts[rows])
