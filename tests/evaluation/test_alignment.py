"""Distances in the shared space on vectors with known answers."""

import numpy as np
import pytest

from evaluation.alignment import clusters, cross_modal, method_ranking_tau


def test_aligned_modalities_have_zero_intra_distance() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(50, 8))
    encodings = {"audio": base, "tag": base * 3.0, "cf": rng.normal(size=(50, 8))}
    present = {n: np.ones(50, dtype=bool) for n in encodings}
    plays = rng.integers(0, 1000, 50).astype(float)
    out = cross_modal(encodings, present, plays)
    assert out["audio-tag"]["intra"] == pytest.approx(0.0, abs=1e-6)
    assert out["audio-tag"]["inter"] > 0.5
    assert out["audio-cf"]["intra"] == pytest.approx(out["audio-cf"]["inter"], abs=0.3)  # unrelated: no alignment


def test_clusters_measure_distance_to_similar_and_random_artists() -> None:
    vectors = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [-1, 0], [0, -1]], dtype=np.float32)
    edges = np.array([[0, 1], [2, 3]])
    out = clusters(vectors, np.ones(6, dtype=bool), edges)
    assert out["intra"] == pytest.approx(0.0) and out["inter"] > 0 and out["n_edges"] == 2
    assert clusters(vectors, np.zeros(6, dtype=bool), edges)["n_edges"] == 0


def test_method_ranking_tau() -> None:
    ndcg = {"a": 0.3, "b": 0.2, "c": 0.1}
    assert method_ranking_tau(ndcg, {"a": 0.1, "b": 0.5, "c": 0.9})["kendall_tau"] == pytest.approx(1.0)
    assert method_ranking_tau(ndcg, {"a": 0.9, "b": 0.5, "c": 0.1})["kendall_tau"] == pytest.approx(-1.0)
