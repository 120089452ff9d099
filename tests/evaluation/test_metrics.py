"""Metrics on hand-computed cases."""

import math

import numpy as np
import pytest

from evaluation.metrics import bootstrap_ci, gini, gini_at_k, ndcg_at_k
from evaluation.retrieval import GroupTruth, evaluate_method, top_k


def test_ndcg_of_a_known_ranking() -> None:
    # Relevant at ranks 1 and 3, 2 relevant in all: DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3).
    value = ndcg_at_k([[True, False, True, False]], [2], k=4)[0]
    assert value == pytest.approx(1.5 / (1 + 1 / math.log2(3)))


def test_ndcg_perfect_empty_and_truncated_ideal() -> None:
    assert ndcg_at_k([[True, True, False]], [2], k=3)[0] == pytest.approx(1.0)
    assert ndcg_at_k([[False, False, False]], [2], k=3)[0] == 0.0
    assert ndcg_at_k([[False, False]], [0], k=2)[0] == 0.0  # no relevant candidate: 0, not NaN
    # 500 relevant, k = 2: ideal is min(500, 2) hits, so two hits is perfect.
    assert ndcg_at_k([[True, True]], [500], k=2)[0] == pytest.approx(1.0)


def test_gini_uniform_concentrated_and_known() -> None:
    assert gini([5, 5, 5, 5]) == pytest.approx(0.0)
    assert gini([0, 0, 0, 10]) == pytest.approx(0.75)  # (n - 1) / n for n = 4
    assert gini([1, 2, 3]) == pytest.approx(2 / 9)
    assert gini([0, 0]) == 0.0


def test_gini_at_k_counts_never_retrieved_universe_artists() -> None:
    retrieved = np.array([[0, 1], [1, 0]])
    assert gini_at_k(retrieved, universe=np.array([0, 1])) == pytest.approx(0.0)
    assert gini_at_k(retrieved, universe=np.array([0, 1, 2, 3])) == pytest.approx(0.5)


def test_bootstrap_ci_brackets_the_mean() -> None:
    values = np.random.default_rng(0).random(500)
    lo, hi = bootstrap_ci(values)
    assert lo < values.mean() < hi and hi - lo < 0.1


def test_group_truth_and_scoring_exclude_the_query() -> None:
    labels = np.array([0, 0, 0, 1, 1])
    truth = GroupTruth(labels)
    queries = np.array([0, 3])
    candidates = np.arange(5)
    np.testing.assert_array_equal(truth.n_relevant(queries, candidates), [2, 1])
    vectors = np.array([[1, 0], [0.9, 0.1], [0.8, 0.2], [0, 1], [0.1, 0.9]], dtype=np.float32)
    retrieved = top_k(vectors[queries], vectors, candidates, queries, k=2)
    np.testing.assert_array_equal(retrieved, [[1, 2], [4, 2]])
    can = np.array([True, True, True, True, True])
    can_two = np.array([True, True, True, False, False])  # a method that cannot represent artists 3 and 4
    result, per_query = evaluate_method(truth, queries, vectors, can, candidates, k=2)
    assert result["ndcg"] == pytest.approx(1.0) and per_query.tolist() == [1.0, 1.0]
    result, per_query = evaluate_method(truth, queries, vectors, can_two, candidates, k=2)
    assert per_query.tolist() == [1.0, 0.0]  # the unanswerable query counts 0
    assert result["ndcg"] == pytest.approx(0.5) and result["n_answered"] == 1 and result["n_indexed"] == 3


def test_edge_truth_is_undirected_and_counts_candidates() -> None:
    from evaluation.retrieval import EdgeTruth

    truth = EdgeTruth(np.array([[0, 1], [2, 1], [0, 3]]), n=5)
    retrieved = np.array([[1, 3, 2, -1], [0, 2, 4, 3]])
    np.testing.assert_array_equal(
        truth.relevant(np.array([0, 1]), retrieved), [[True, True, False, False], [True, True, False, False]]
    )
    np.testing.assert_array_equal(truth.n_relevant(np.array([0, 1, 4]), np.array([1, 2, 3])), [2, 1, 0])


def test_a_method_is_not_excused_the_relevant_artists_it_cannot_represent() -> None:
    """DESIGN: the ideal DCG counts the query's relevant artists in the universe, held by the method or not.

    Query 0's relevant artists are 1 and 2; a method that cannot represent artist 2 finds only 1,
    so its nDCG@2 is 1 / (1 + 1/log2(3)), not 1 (the old reading divided by its own candidates).
    """
    truth = GroupTruth(np.array([0, 0, 0, 1, 1]))
    vectors = np.array([[1, 0], [0.9, 0.1], [0.8, 0.2], [0, 1], [0.1, 0.9]], dtype=np.float32)
    universe = np.arange(5)
    cannot_hold_2 = np.array([True, True, False, True, True])
    _, per_query = evaluate_method(truth, np.array([0]), vectors, cannot_hold_2, universe, k=2)
    assert per_query[0] == pytest.approx(1 / (1 + 1 / math.log2(3)))
