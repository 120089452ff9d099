"""Training: the loss falls on synthetic data, runs are reproducible, configs round-trip."""

from pathlib import Path

import numpy as np
import pytest
import torch

from catalog.io import read_catalog
from catalog.synthetic import SyntheticCatalog
from core.errors import CmarError
from model_export.config import TrainConfig
from model_export.train import load_checkpoint, split_rows, train_model
from tests.conftest import Built


def test_loss_falls_and_validation_improves(tiny_catalog: tuple[Path, SyntheticCatalog]) -> None:
    catalog = read_catalog(tiny_catalog[0])
    result = train_model(catalog, TrainConfig(epochs=6, batch_size=64, lr=1e-3, patience=0), progress=False)
    history = result.history
    assert history[-1]["train_loss"] < 0.8 * history[0]["train_loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert history[-1]["val_recall_at_10"] > history[0]["val_recall_at_10"]


def test_same_seed_same_weights(tiny_catalog: tuple[Path, SyntheticCatalog]) -> None:
    catalog = read_catalog(tiny_catalog[0])
    config = TrainConfig(epochs=1, batch_size=64, seed=7)
    a = train_model(catalog, config, progress=False).model.state_dict()
    b = train_model(catalog, config, progress=False).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_training_artists_have_at_least_min_modalities(tiny_catalog: tuple[Path, SyntheticCatalog]) -> None:
    catalog = read_catalog(tiny_catalog[0])
    counts = catalog.present().sum(axis=0)
    for min_modalities in (2, 3):
        train_rows, val_rows = split_rows(catalog, TrainConfig(min_modalities=min_modalities))
        rows = np.concatenate([train_rows, val_rows])
        assert np.intersect1d(train_rows, val_rows).size == 0
        assert set(rows.tolist()) == set(np.flatnonzero(counts >= min_modalities).tolist())


def test_config_round_trips_and_rejects_nonsense() -> None:
    config = TrainConfig(epochs=3, hidden={"audio": (32,), "cf": (16, 8)})
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(CmarError, match="temperature must be a finite number > 0"):
        TrainConfig(temperature=0)
    with pytest.raises(CmarError, match="unknown training config key"):
        TrainConfig.from_dict({"epoch": 3})


def test_checkpoint_rebuilds_the_model(built: Built) -> None:
    model, info = load_checkpoint(built.checkpoint)
    assert info["config"]["embedding_dim"] == 200
    assert set(model.encoders) == {"audio", "cf", "tag"}
    with pytest.raises(CmarError, match="not a checkpoint folder"):
        load_checkpoint(built.model)


def test_thin_tags_cut_a_share_of_tag_sets_to_their_heaviest_few(tiny_catalog: tuple[Path, SyntheticCatalog]) -> None:
    from model_export.inputs import ModalityInputs
    from model_export.train import THIN_TAGS, thin_tag_limits

    catalog = read_catalog(tiny_catalog[0])
    inputs = ModalityInputs(catalog, max_tags=16)
    rows = np.flatnonzero(inputs.present["tag"])
    assert thin_tag_limits(inputs, rows, TrainConfig(thin_tags=0.0), np.random.default_rng(0)) is None
    limits = thin_tag_limits(inputs, np.tile(rows, 20), TrainConfig(thin_tags=0.3), np.random.default_rng(0))
    assert limits is not None and set(limits) == {"tag"}
    thin = limits["tag"] < 16
    assert abs(thin.mean() - 0.3) < 0.03 and set(limits["tag"][thin].tolist()) == set(range(1, THIN_TAGS + 1))
    items, weights = inputs.gather("tag", rows[:50])
    assert ((weights > 0).sum(dim=1) > 2).any()  # some sets are really cut
    cut_items, cut_weights = inputs.gather("tag", rows[:50], np.full(50, 2))
    assert torch.equal((cut_weights > 0).sum(dim=1), (weights > 0).sum(dim=1).clamp(max=2))
    assert torch.equal(cut_weights[:, :2], weights[:, :2]) and not cut_weights[:, 2:].any()  # the heaviest two kept
    assert not cut_items[:, 2:].any() and torch.equal(cut_items[:, :2], items[:, :2])
    with pytest.raises(CmarError, match="thin_tags"):
        TrainConfig(thin_tags=1.5)
