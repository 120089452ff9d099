"""Index structures: exact or HNSW by size, recall tuned against exact search, sampled hub penalties."""

import faiss
import numpy as np
import pytest

from core.search import RECALL_TARGET
from core.vectors import l2_normalize
from index_build.hubs import penalties, sampled_penalties
from index_build.structure import EF_SEARCH, Structure, choose, make, recall_at, tune


def _clustered(n: int, dim: int = 24, clusters: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    points = centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, dim))
    return l2_normalize(points).astype(np.float32)


def test_exact_up_to_the_limit_then_a_graph() -> None:
    assert choose(100, exact_limit=100) == Structure("flat")
    assert choose(101, exact_limit=100) == Structure("hnsw")
    assert isinstance(make(Structure("hnsw"), _clustered(50)), faiss.IndexHNSWFlat)
    assert make(Structure("flat"), _clustered(50)).ntotal == 50


def test_recall_counts_shared_ids_per_query_and_ignores_missing_results() -> None:
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 9, -1], [5, 6, 7, 8]])
    assert recall_at(found, truth) == pytest.approx((2 / 4 + 1.0) / 2)


def test_tuning_reaches_the_target_and_an_exact_index_measures_one() -> None:
    vectors = _clustered(6000)
    queries = vectors[:200]
    graph = make(Structure("hnsw"), vectors)
    tuning = tune(graph, vectors, queries, k=100)
    assert tuning.ef_search in EF_SEARCH and tuning.recall >= RECALL_TARGET and tuning.k == 100
    _, truth = faiss.knn(queries, vectors, 100, metric=faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efSearch = tuning.ef_search
    assert recall_at(graph.search(queries, 100)[1], truth) == pytest.approx(tuning.recall)  # the setting kept
    exact = tune(make(Structure("flat"), vectors), vectors, queries, k=100)
    assert exact.ef_search == 0 and exact.recall == 1.0


def test_sampled_hub_penalties_track_the_exact_ones() -> None:
    vectors = _clustered(8000, seed=1)
    exact = penalties(vectors, k=100, beta=0.5)
    sampled = sampled_penalties(vectors, k=100, beta=0.5)
    assert sampled.shape == exact.shape
    assert np.corrcoef(exact, sampled)[0, 1] > 0.9
    assert abs(float(sampled.mean() - exact.mean())) < 0.1 * float(exact.mean())
    assert not sampled_penalties(vectors, k=100, beta=0.0).any()
