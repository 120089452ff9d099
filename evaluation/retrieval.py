"""Exact retrieval over a candidate set and its scoring against ground truth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import faiss
import numpy as np
import scipy.sparse as sp

from core.balance import Balance
from core.vectors import as_candidates, as_queries, l2_normalize
from evaluation.metrics import bootstrap_ci, gini_at_k, ndcg_at_k
from index_build.hubs import penalties


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


class EdgeTruth:
    """Artists are relevant to each other when an undirected ground-truth edge joins them."""

    def __init__(self, edges: np.ndarray, n: int) -> None:
        edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        both = np.concatenate([edges, edges[:, ::-1]])
        self.adjacency = sp.csr_matrix((np.ones(len(both), dtype=np.int8), (both[:, 0], both[:, 1])), shape=(n, n))
        self.adjacency.sum_duplicates()
        self.adjacency.data[:] = 1

    def relevant(self, queries: np.ndarray, retrieved: np.ndarray) -> np.ndarray:
        rows = np.repeat(queries, retrieved.shape[1])
        cols = np.maximum(retrieved.ravel(), 0)
        hits = np.asarray(self.adjacency[rows, cols]).ravel().reshape(retrieved.shape) > 0
        return hits & (retrieved >= 0)

    def n_relevant(self, queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        mask = np.zeros(self.adjacency.shape[0], dtype=np.int64)
        mask[candidates] = 1
        return np.asarray(self.adjacency[queries] @ mask).ravel()


Hub = tuple[int, float]  # (neighbours, beta) of a hub penalty; see index_build.hubs
Balanced = tuple[Balance, np.ndarray]  # a modality balance and every artist's slot in it (n_artists,)


def top_k(
    query_vectors: np.ndarray,
    candidate_vectors: np.ndarray,
    candidates: np.ndarray,
    queries: np.ndarray,
    k: int,
    hub: Hub | None = None,
    balance: Balanced | None = None,
) -> np.ndarray:
    """Rows of the k most cosine-similar candidates of each query, the query itself excluded (-1 pads).

    With `hub`, candidates are ranked by cosine minus their hub penalty among the candidates,
    and with `balance` plus the modality balance's offset for the query's and the candidate's
    slots (`core.balance`), exactly as a product index built over these candidates would rank them.
    """
    cands = l2_normalize(candidate_vectors)
    qs = l2_normalize(query_vectors)
    rule = Balance() if balance is None else balance[0]
    if (hub is not None and hub[1] > 0) or rule.subsets:
        penalty = penalties(cands, int(hub[0]), float(hub[1])) if hub is not None else np.zeros(len(cands))
        if balance is None:  # one slot: [v, -penalty] and [q, 1]
            cands, qs = as_candidates(cands, penalty), as_queries(qs)
        else:
            cands = as_candidates(cands, rule.penalties(penalty, balance[1][candidates]))
            qs = as_queries(qs, balance[1][queries], rule.width)
    index = faiss.IndexFlatIP(cands.shape[1])
    index.add(cands)
    want = min(k + 1, len(candidates))
    _, pos = index.search(qs, want)
    rows = np.where(pos >= 0, candidates[np.maximum(pos, 0)], -1)
    out = np.full((len(queries), k), -1, dtype=np.int64)
    for i, (q, found) in enumerate(zip(queries, rows, strict=True)):
        kept = found[(found != q) & (found >= 0)][:k]
        out[i, : kept.size] = kept
    return out


def evaluate_method(
    truth: GroundTruth,
    queries: np.ndarray,
    vectors: np.ndarray,
    can: np.ndarray,
    pool: np.ndarray,
    k: int = 200,
    hub: Hub | None = None,
    balance: Balanced | None = None,
) -> tuple[dict[str, Any], np.ndarray]:
    """Score one method that can represent the artists where `can` is true.

    It queries with the `queries` it can represent and retrieves among the `pool` artists it can
    represent; each query's ideal DCG counts its relevant artists in the whole `pool` (the
    universe), whether or not the method can represent them. Returns the summary (nDCG over all
    queries, unanswerable ones counting 0) and the per-query nDCG (len(queries),).
    """
    candidates = pool[can[pool]]
    answerable = can[queries]
    asked = queries[answerable]
    retrieved = top_k(vectors[asked], vectors[candidates], candidates, asked, k, hub, balance)
    per_query = np.zeros(len(queries))
    # The ideal counts every relevant artist of the universe (DESIGN: nDCG), also those this
    # method cannot represent: a method is not excused from finding what it cannot hold.
    per_query[answerable] = ndcg_at_k(truth.relevant(asked, retrieved), truth.n_relevant(asked, pool), k)
    lo, hi = bootstrap_ci(per_query)
    result = {
        "ndcg": float(per_query.mean()) if len(queries) else 0.0,
        "ndcg_ci": [lo, hi],
        "gini": gini_at_k(retrieved, pool),
        "n_queries": len(queries),
        "n_answered": int(asked.size),
        "n_indexed": int(candidates.size),
    }
    return result, per_query
