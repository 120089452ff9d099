"""Ward clustering of tracks, homonym groups and the threshold choice (Royo-Letelier et al. 2018)."""

import numpy as np
import pytest

from core.errors import CmarError
from inference.homonyms import GROUP_WEIGHTS, best_threshold, choose_threshold, homonym_groups
from inference.tracks import ward_clusters


def test_two_far_groups_are_two_clusters_numbered_by_first_track() -> None:
    x = np.array([[5.0, 5], [0, 0], [5.1, 5], [0.1, 0], [0, 0.1]])
    c = ward_clusters(x, threshold=1.0)
    assert c.labels.tolist() == [0, 1, 0, 1, 1] and c.n_clusters == 2
    assert 0.8 < c.confidence < 1  # far apart for the threshold
    assert ward_clusters(x, threshold=1e6).n_clusters == 1 and ward_clusters(x, 1e6).confidence == 0
    assert ward_clusters(x[:1], 1.0).labels.tolist() == [0] and ward_clusters(x[:0], 1.0).n_clusters == 0


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_threshold_must_be_positive(bad: float) -> None:
    with pytest.raises(CmarError, match="threshold"):
        ward_clusters(np.zeros((3, 2)), bad)


def test_groups_follow_the_papers_proportions_and_use_each_artist_once() -> None:
    rng = np.random.default_rng(0)
    sizes = []
    for _ in range(200):
        groups = homonym_groups(np.arange(50), rng)
        members = np.concatenate(groups)
        assert len(np.unique(members)) == len(members) and all(2 <= len(g) <= 4 for g in groups)
        sizes += [len(g) for g in groups]
    share = np.bincount(sizes, minlength=5)[2:] / len(sizes)
    np.testing.assert_allclose(share, np.array(GROUP_WEIGHTS) / sum(GROUP_WEIGHTS), atol=0.03)


def test_the_middle_of_a_plateau_of_best_thresholds_is_chosen() -> None:
    assert best_threshold(np.arange(7.0), np.array([0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.2])) == 3


def test_choose_threshold_separates_pooled_artists() -> None:
    rng = np.random.default_rng(1)
    embs, truths = [], []
    for _ in range(10):
        centres = rng.normal(0, 3, (2, 4))
        embs.append(np.concatenate([c + rng.normal(0, 0.1, (5, 4)) for c in centres]))
        truths.append(np.repeat([0, 1], 5))
    threshold, ami = choose_threshold(embs, truths)
    assert ami == pytest.approx(1.0) and threshold > 0
