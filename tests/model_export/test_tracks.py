"""The track encoder (Royo-Letelier et al. 2018): triplet loss and selection, side-info sampler, training, export."""

from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import CmarError
from core.manifest import TrackModelManifest, read_manifest
from inference.tracks import TrackModel
from model_export.track_export import train_track_model
from model_export.tracks import (
    TrackConfig,
    TripletSampler,
    embed,
    informative,
    selected_loss,
    train_tracks,
    triplet_losses,
)
from tests.tracks_data import synthetic_tracks, track_catalog


def test_triplet_loss_matches_a_direct_loop() -> None:
    gen = torch.Generator().manual_seed(0)
    a, p, n = (torch.nn.functional.normalize(torch.randn(6, 5, generator=gen), dim=-1) for _ in range(3))
    got = triplet_losses(a, p, n, margin=0.2)
    for i in range(6):
        d_ap = sum((float(a[i, k]) - float(p[i, k])) ** 2 for k in range(5))
        d_an = sum((float(a[i, k]) - float(n[i, k])) ** 2 for k in range(5))
        assert got[i].item() == pytest.approx(max(0.0, d_ap - d_an + 0.2), abs=1e-6)


def test_selection_keeps_exactly_the_hard_and_semi_hard_triplets() -> None:
    d_ap = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.5])
    d_an = torch.tensor([0.5, 1.0, 1.1, 1.2, 2.0])  # hard, semi-hard (tie), semi-hard, easy (= margin), easy
    assert informative(d_ap, d_an, margin=0.2).tolist() == [True, True, True, False, False]


def test_selected_loss_averages_over_the_informative_triplets_only() -> None:
    a = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.1, 0.0]])  # d_ap = 1, 1, 0.01
    n = torch.tensor([[0.5, 0.0], [1.0, 0.3], [3.0, 0.0]])  # d_an = 0.25 (hard), 1.09 (semi-hard), 9 (easy)
    expected = ((1 - 0.25 + 0.2) + (1 - 1.09 + 0.2)) / 2  # the easy triplet does not dilute the mean
    assert selected_loss(a, p, n, 0.2).item() == pytest.approx(expected, abs=1e-6)
    assert selected_loss(a[2:], p[2:], n[2:], 0.2).item() == 0.0


def test_batches_hold_every_positive_pair_of_n_tracks_of_n_artists() -> None:
    labels = np.repeat(np.arange(10), 5)
    sampler = TripletSampler(labels, None, artists_per_batch=4, tracks_per_artist=3, side_info_p=0.0,
                             rng=np.random.default_rng(0))  # fmt: skip
    anchors, positives, negatives = sampler.batch()
    assert len(anchors) == 4 * 3 * 2 // 2
    assert (labels[anchors] == labels[positives]).all() and (anchors != positives).all()
    assert (labels[negatives] != labels[anchors]).all()


def test_side_info_sampler_prefers_same_tag_negatives_at_rate_p_and_falls_back() -> None:
    labels = np.repeat(np.arange(40), 4)
    tags = [("rock",) if a % 2 == 0 else ("jazz",) for a in labels]
    sampler = TripletSampler(labels, tags, 8, 4, side_info_p=0.7, rng=np.random.default_rng(1))
    same = total = 0
    for _ in range(200):
        anchors, _, negatives = sampler.batch()
        same += int(sum(tags[a] == tags[n] for a, n in zip(anchors, negatives, strict=True)))
        total += len(anchors)
    # p of the negatives are drawn among same-tag tracks; the others are uniform (half of them share the tag)
    assert same / total == pytest.approx(0.7 + 0.3 * 0.5, abs=0.03)
    assert sampler.side_info_draws / sampler.draws == pytest.approx(0.7, abs=0.03)
    lonely = [(f"only{a}",) for a in labels]  # no other artist shares a tag: always the fallback
    fallback = TripletSampler(labels, lonely, 8, 4, side_info_p=1.0, rng=np.random.default_rng(2))
    anchors, _, negatives = fallback.batch()
    assert fallback.side_info_draws == 0 and (labels[negatives] != labels[anchors]).all()


def test_triplet_loss_falls_on_synthetic_tracks() -> None:
    audio, labels, tags = synthetic_tracks(n_artists=30, tracks=6)
    sampler = TripletSampler(labels, None, 30, 6, 0.0, np.random.default_rng(5))
    a, p, n = sampler.batch()  # fixed triplets: every positive pair, a random negative each

    def loss_after(iterations: int, method: str = "triplet") -> float:
        config = TrackConfig(method=method, iterations=iterations, lr=1e-3)
        trained = train_tracks(audio, labels, tags, config, progress=False)
        e = torch.from_numpy(embed(trained.encoder, audio))
        return float(triplet_losses(e[a], e[p], e[n], 0.2).mean())

    assert loss_after(400) < 0.5 * loss_after(1)
    assert loss_after(300, "classifier") < loss_after(1, "classifier")


def test_too_few_artists_is_a_clear_error() -> None:
    with pytest.raises(CmarError, match="at least 2 artists"):
        train_tracks(np.zeros((3, 4), np.float32), np.zeros(3, np.int64), None, TrackConfig(iterations=1), False)


def test_track_model_exports_with_manifest_threshold_and_parity(tmp_path: Path) -> None:
    track_catalog(tmp_path / "cat", n_artists=40, tracks=6)
    config = TrackConfig(iterations=300, lr=1e-3)
    manifest = train_track_model(tmp_path / "cat", tmp_path / "tm", config, progress=False)
    assert manifest.metrics["parity_max_abs_diff"] <= 1e-5
    assert manifest.training["margin"] == 0.2 and manifest.method == "triplet"
    assert read_manifest(tmp_path / "tm", TrackModelManifest).model_version == manifest.model_version
    model = TrackModel(tmp_path / "tm")
    audio, _, _ = synthetic_tracks(n_artists=40, tracks=6)
    emb = model.embed(audio)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # the threshold was chosen on held-out artists: it separates most pairs of artists
    assert manifest.metrics["threshold_ami"] > 0.5
    with pytest.raises(CmarError, match=r"must be \(n, 12\)"):
        model.embed(audio[:, :5])


def test_track_config_refuses_bad_values() -> None:
    with pytest.raises(CmarError, match="margin"):
        TrackConfig(margin=0)
    with pytest.raises(CmarError, match="method"):
        TrackConfig(method="siamese")
    assert TrackConfig.from_dict(TrackConfig(hidden=(32, 16)).to_dict()) == TrackConfig(hidden=(32, 16))


def test_side_info_draws_stay_cheap_and_other_artists_only() -> None:
    labels = np.repeat(np.arange(2000), 3)
    tags = [("rock",)] * len(labels)  # one tag shared by 6,000 tracks
    sampler = TripletSampler(labels, tags, 32, 3, side_info_p=1.0, rng=np.random.default_rng(0))
    anchors, _, negatives = sampler.batch()
    assert (labels[negatives] != labels[anchors]).all() and sampler.side_info_draws == sampler.draws


def test_margin_beyond_the_sphere_is_refused() -> None:
    with pytest.raises(CmarError, match=r"margin must be in \(0, 4\]"):
        TrackConfig(margin=5)
