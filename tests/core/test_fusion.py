"""Fusion: modality weights, completion maps, the vectors they change (and those they leave alone), the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.errors import CmarError
from core.fusion import Fusion, check_completion, check_modality_weights, ridge, subset_name
from core.vectors import fuse, l2_normalize

D = 8


def _world(n: int = 400, seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Audio embeddings whose CF and tag embeddings are fixed rotations of them (so predictable)."""
    rng = np.random.default_rng(seed)
    audio = l2_normalize(rng.normal(size=(n, D)))
    rot_cf, _ = np.linalg.qr(rng.normal(size=(D, D)))
    rot_tag, _ = np.linalg.qr(rng.normal(size=(D, D)))
    encodings = {"audio": audio, "cf": l2_normalize(audio @ rot_cf), "tag": l2_normalize(audio @ rot_tag)}
    present = {name: np.ones(n, dtype=bool) for name in encodings}
    return encodings, present


def test_ridge_recovers_a_linear_map_with_its_intercept() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 4))
    w, b = rng.normal(size=(4, 3)), rng.normal(size=3)
    fitted_w, fitted_b = ridge(x, x @ w + b, alpha=1e-6)
    np.testing.assert_allclose(fitted_w, w, atol=1e-4)
    np.testing.assert_allclose(fitted_b, b, atol=1e-4)


def test_an_audio_only_artist_is_completed_by_its_predicted_cf_and_tag() -> None:
    encodings, present = _world()
    completion = Fusion.fit(encodings, present, {}, {"audio": 1.0})
    assert set(completion.maps) == {("audio", "cf"), ("audio", "tag")}

    names = ["audio", "cf", "tag"]
    stack = np.stack([encodings[n][:3] for n in names])
    only_audio = np.array([[True] * 3, [False] * 3, [False] * 3])
    fused = completion.fuse(stack, only_audio, names)
    # The maps are exact rotations here, so completing audio alone gives the artist's full fusion
    # (up to the ridge penalty's small shrinkage).
    np.testing.assert_allclose(fused, fuse(stack, np.ones_like(only_audio)), atol=5e-3)
    assert np.all(np.einsum("ij,ij->i", fused, encodings["audio"][:3]) < 0.99)  # it moved


def test_unweighted_subsets_fuse_as_before_and_absent_artists_stay_zero() -> None:
    encodings, present = _world()
    completion = Fusion.fit(encodings, present, {}, {"audio": 1.0})
    names = ["audio", "cf", "tag"]
    stack = np.stack([encodings[n][:4] for n in names])
    # columns are artists: cf alone, audio+cf, all three, nothing
    mask = np.array([[0, 1, 1, 0], [1, 1, 1, 0], [0, 0, 1, 0]], dtype=bool)
    fused = completion.fuse(stack, mask, names)
    np.testing.assert_allclose(fused, fuse(stack, mask), atol=1e-6)  # cf, audio+cf, all three, nothing
    assert not fused[3].any()
    # No weights at all: exactly core.vectors.fuse.
    np.testing.assert_allclose(Fusion().fuse(stack, mask, names), fuse(stack, mask), atol=1e-6)


def test_the_stack_order_does_not_matter() -> None:
    encodings, present = _world()
    completion = Fusion.fit(encodings, present, {}, {"audio": 0.5, "cf": 1.0})
    names = ["tag", "audio", "cf"]
    stack = np.stack([encodings[n][:5] for n in names])
    mask = np.array([[False] * 5, [True] * 5, [False] * 5])  # audio alone, given second
    reordered = completion.fuse(stack[[1, 0, 2]], mask[[1, 0, 2]], ["audio", "tag", "cf"])
    np.testing.assert_allclose(completion.fuse(stack, mask, names), reordered, atol=1e-6)


def test_a_map_with_too_few_artists_is_left_out() -> None:
    encodings, present = _world(n=50)
    present["tag"] = np.zeros(50, dtype=bool)
    present["tag"][:5] = True
    completion = Fusion.fit(encodings, present, {}, {"audio": 1.0})
    assert set(completion.maps) == {("audio", "cf")}


def test_save_and_load_round_trip_and_refuse_a_wrong_shape(tmp_path: Path) -> None:
    encodings, present = _world()
    completion = Fusion.fit(encodings, present, {}, {"audio": 1.0})
    completion.save(tmp_path)
    loaded = Fusion.load(tmp_path, {}, {"audio": 1.0}, D)
    assert set(loaded.maps) == set(completion.maps)
    for key, (w, b) in completion.maps.items():
        np.testing.assert_array_equal(loaded.maps[key][0], w)
        np.testing.assert_array_equal(loaded.maps[key][1], b)
    with pytest.raises(CmarError, match="expected \\(16, 16\\)"):
        Fusion.load(tmp_path, {}, {"audio": 1.0}, 16)
    assert not Fusion.load(tmp_path, {}, {}, D).maps  # no weights, no completion
    # a subset the manifest completes but the file lacks: an error for a model, not for a checkpoint
    with pytest.raises(CmarError, match="no completion map for cf"):
        Fusion.load(tmp_path, {}, {"audio": 1.0, "cf": 1.0}, D)
    assert set(Fusion.load(tmp_path, {}, {"audio": 1.0, "cf": 1.0}, D, require=False).maps) == set(completion.maps)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated", b"\x93NUMPY not really"])
def test_a_damaged_completion_file_is_a_one_line_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "completion.npz").write_bytes(content)
    with pytest.raises(CmarError, match="not a completion file"):
        Fusion.load(tmp_path, {}, {"audio": 1.0}, D)


def test_a_plain_npy_file_is_not_a_completion_file(tmp_path: Path) -> None:
    np.save(tmp_path / "completion.npy", np.zeros(3))
    (tmp_path / "completion.npy").rename(tmp_path / "completion.npz")
    with pytest.raises(CmarError, match=r"not an \.npz archive"):
        Fusion.load(tmp_path, {}, {"audio": 1.0}, D)


def test_modality_weights_weigh_the_sum_of_an_artists_embeddings() -> None:
    encodings, _ = _world()
    names = ["audio", "cf", "tag"]
    fusion = Fusion({"audio": 0.5, "tag": 2.0})
    stack = np.stack([encodings[n][:3] for n in names])
    mask = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=bool)  # artists: all three, audio+tag, tag alone
    fused = fusion.fuse(stack, mask, names)
    unit = l2_normalize(stack)
    np.testing.assert_allclose(fused[0], l2_normalize(0.5 * unit[0, 0] + unit[1, 0] + 2 * unit[2, 0]), atol=1e-6)
    np.testing.assert_allclose(fused[1], l2_normalize(0.5 * unit[0, 1] + 2 * unit[2, 1]), atol=1e-6)
    np.testing.assert_allclose(fused[2], unit[2, 2], atol=1e-6)  # one modality: its own direction


def test_a_completed_modality_enters_with_its_modality_weight() -> None:
    encodings, present = _world()
    weights = {"audio": 0.5, "tag": 2.0}
    fusion = Fusion.fit(encodings, present, weights, {"audio": 1.0})
    names = ["audio", "cf", "tag"]
    stack = np.stack([encodings[n][:2] for n in names])
    only_audio = np.array([[True, True], [False, False], [False, False]])
    # exact maps: audio completed weighs like an artist that has all three, with the same weights
    np.testing.assert_allclose(
        fusion.fuse(stack, only_audio, names), Fusion(weights).fuse(stack, np.ones_like(only_audio), names), atol=5e-3
    )


def test_weights_are_checked() -> None:
    assert check_completion({"audio": 1.0, "audio+cf": 0.5}) == []
    assert check_modality_weights({"audio": 0.5, "tag": 2.0}) == []
    assert len(check_modality_weights({"video": 1.0, "tag": 0.0})) == 2
    assert subset_name(["tag", "audio"]) == "audio+tag"
    problems = check_completion({"cf+audio": 1.0, "video": 1.0, "audio+cf+tag": 1.0, "tag": -1.0})
    assert len(problems) == 4
    assert any("in that order" in p and "cf+audio" in p for p in problems)
    assert any("nothing is missing" in p for p in problems)
    assert any(">= 0" in p for p in problems)
