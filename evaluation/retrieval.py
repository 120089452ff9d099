"""Exact retrieval over a candidate set and its scoring against ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import faiss
import numpy as np

from core.vectors import l2_normalize
from evaluation.metrics import bootstrap_ci, gini_at_k, ndcg_at_k


class GroundTruth(Protocol):
    """Which universe artists are relevant to which."""

    def relevant(self, queries: np.ndarray, retrieved: np.ndarray) -> np.ndarray:
        """(Q, k) booleans: is retrieved[q, r] relevant to queries[q] (-1 = no result)."""
        ...

    def n_relevant(self, queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """(Q,) how many of the candidate rows are relevant to each query (the query excluded)."""
        ...


@dataclass
class GroupTruth:
    """Artists are relevant to each other when they share a group label (the synthetic styles)."""

    labels: np.ndarray  # (N,)

    def relevant(self, queries: np.ndarray, retrieved: np.ndarray) -> np.ndarray:
        same = self.labels[np.maximum(retrieved, 0)] == self.labels[queries][:, None]
        return same & (retrieved >= 0) & (retrieved != queries[:, None])

    def n_relevant(self, queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        counts = np.bincount(self.labels[candidates], minlength=int(self.labels.max()) + 1)
        in_candidates = np.isin(queries, candidates)
        return counts[self.labels[queries]] - in_candidates


def top_k(
    query_vectors: np.ndarray, candidate_vectors: np.ndarray, candidates: np.ndarray, queries: np.ndarray, k: int
) -> np.ndarray:
    """Rows of the k most cosine-similar candidates of each query, the query itself excluded (-1 pads)."""
    index = faiss.IndexFlatIP(candidate_vectors.shape[1])
    index.add(l2_normalize(candidate_vectors))
    want = min(k + 1, len(candidates))
    _, pos = index.search(l2_normalize(query_vectors), want)
    rows = np.where(pos >= 0, candidates[np.maximum(pos, 0)], -1)
    out = np.full((len(queries), k), -1, dtype=np.int64)
    for i, (q, found) in enumerate(zip(queries, rows, strict=True)):
        kept = found[(found != q) & (found >= 0)][:k]
        out[i, : kept.size] = kept
    return out


def score(
    truth: GroundTruth,
    queries: np.ndarray,
    retrieved: np.ndarray,
    candidates: np.ndarray,
    n_total_queries: int,
    universe: np.ndarray,
    k: int = 200,
) -> dict[str, Any]:
    """nDCG@k (averaged over `n_total_queries`, so unanswerable queries count as 0), its CI, and Gini@k."""
    per_query = ndcg_at_k(truth.relevant(queries, retrieved), truth.n_relevant(queries, candidates), k)
    padded = np.concatenate([per_query, np.zeros(n_total_queries - per_query.size)])
    lo, hi = bootstrap_ci(padded)
    return {
        "ndcg": float(padded.mean()),
        "ndcg_ci": [lo, hi],
        "gini": gini_at_k(retrieved, universe),
        "n_queries": int(n_total_queries),
        "n_answered": int(per_query.size),
        "n_indexed": int(candidates.size),
    }
