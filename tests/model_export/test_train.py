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
