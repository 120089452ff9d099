"""PPMI on a tiny matrix, the tag embedding, ALS on a checkerboard."""

import numpy as np
import pytest
import scipy.sparse as sp

from catalog.featurize import FeaturizeConfig, als_item_factors, ppmi, standardise, tag_embedding


def test_ppmi_of_a_tiny_matrix() -> None:
    counts = np.array([[2.0, 0.0], [1.0, 1.0]])  # total 4; p(row) = .5, .5; p(col) = .75, .25
    out = ppmi(sp.csr_matrix(counts)).toarray()
    assert out[0, 0] == pytest.approx(np.log((2 / 4) / (0.5 * 0.75)))  # log(4/3) > 0
    assert out[0, 1] == 0  # zero count
    assert out[1, 0] == 0  # log((1/4) / (.5 * .75)) = log(2/3) < 0: clipped
    assert out[1, 1] == pytest.approx(np.log((1 / 4) / (0.5 * 0.25)))  # log 2


def test_tag_embedding_drops_rare_tags_and_separates_groups() -> None:
    rng = np.random.default_rng(0)
    counts = np.zeros((40, 9))
    for i in range(40):
        group = i % 2
        counts[i, rng.choice(np.arange(4) + 4 * group, 3, replace=False)] = rng.integers(1, 5, 3)
    counts[0, 8] = 1  # a tag used once: dropped with tag_min_artists = 2
    emb = tag_embedding(sp.csr_matrix(counts), FeaturizeConfig(tag_dim=3, tag_min_artists=2))
    assert emb.kept.tolist() == list(range(8)) and emb.tag_vectors.shape == (8, 3)
    unit = emb.artist_vectors / np.linalg.norm(emb.artist_vectors, axis=1, keepdims=True)
    sims = unit @ unit.T
    same = np.equal.outer(np.arange(40) % 2, np.arange(40) % 2)
    assert sims[same].mean() > sims[~same].mean() + 0.5


def test_als_recovers_a_checkerboard() -> None:
    users, items = 40, 20
    counts = np.zeros((users, items))
    for u in range(users):
        counts[u, (np.arange(items) % 2) == (u % 2)] = 5
    factors = als_item_factors(sp.csr_matrix(counts), FeaturizeConfig(cf_factors=4, cf_iterations=10))
    unit = factors / np.linalg.norm(factors, axis=1, keepdims=True)
    sims = unit @ unit.T
    same = np.equal.outer(np.arange(items) % 2, np.arange(items) % 2)
    assert factors.shape == (items, 4)
    assert sims[same].min() > sims[~same].max()


def test_standardise() -> None:
    out = standardise(np.array([[1.0, 5.0], [3.0, 5.0]]))
    np.testing.assert_allclose(out, [[-1, 0], [1, 0]])
