"""Modality groups: entropy of known distributions, the share matrix of known retrievals."""

import math

import numpy as np
import pytest

from evaluation.groups import assign_groups, entropy, modality_groups, subsets


def test_entropy_of_known_distributions() -> None:
    assert entropy(np.ones(7)) == pytest.approx(math.log(7))  # the maximum, 1.946
    assert entropy([1, 0, 0]) == 0.0
    assert entropy([0, 0, 0]) == 0.0  # a group that cannot be queried
    assert entropy([0.5, 0.5]) == pytest.approx(math.log(2))
    assert entropy([2, 2, 0, 0]) == pytest.approx(math.log(2))  # counts are normalised


def test_subsets_and_groups() -> None:
    assert subsets(["audio", "cf", "tag"]) == [
        ("audio",),
        ("cf",),
        ("tag",),
        ("audio", "cf"),
        ("audio", "tag"),
        ("cf", "tag"),
        ("audio", "cf", "tag"),
    ]
    groups = assign_groups(np.arange(30), 7)
    assert [len(g) for g in groups] == [4] * 7
    assert len(np.unique(np.concatenate(groups))) == 28


def test_share_matrix_of_a_method_that_only_sees_its_own_group() -> None:
    n = 70
    full = np.arange(n)
    names = ["audio", "cf", "tag"]

    def by_subset(keeps: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        # A vector per artist that encodes which modalities it keeps: results stay in the query's group.
        code = np.stack([keeps[m] for m in names], axis=1).astype(np.float32)
        return code + 1e-3 * np.random.default_rng(0).normal(size=code.shape).astype(np.float32), code.any(axis=1)

    def audio_only(keeps: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return np.random.default_rng(1).normal(size=(n, 4)).astype(np.float32), keeps["audio"]

    out = modality_groups({"own": by_subset, "audio": audio_only}, names, full, n, k=5)
    own = np.array(out["own"]["matrix"])
    np.testing.assert_allclose(own, np.eye(7), atol=1e-9)
    assert out["own"]["entropy"] == pytest.approx(0.0)
    audio = np.array(out["audio"]["matrix"])
    # Groups without audio (cf, tag, cf+tag) cannot query: zero rows; results only from groups with audio.
    assert audio[[1, 2, 5]].sum() == 0
    assert audio[:, [1, 2, 5]].sum() == 0
    assert 0 < out["audio"]["entropy"] < math.log(4)
