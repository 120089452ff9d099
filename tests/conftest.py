"""Shared fixtures: a tiny synthetic catalogue and, built once per session, its model and index."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from catalog.synthetic import SyntheticCatalog, SyntheticSpec, write_synthetic

TINY = SyntheticSpec(n_artists=600, n_styles=8, seed=3)


@dataclass(frozen=True)
class Built:
    """Folders of a trained, exported and indexed tiny catalogue."""

    catalog: Path
    checkpoint: Path
    model: Path
    index: Path
    synthetic: SyntheticCatalog


@pytest.fixture(scope="session")
def tiny_catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SyntheticCatalog]:
    """A 600-artist synthetic catalogue on disk."""
    folder = tmp_path_factory.mktemp("catalog") / "tiny"
    return folder, write_synthetic(folder, TINY)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_catalog: tuple[Path, SyntheticCatalog]) -> Built:
    """Train for a few epochs, export and index the tiny catalogue (once per test session)."""
    from model_export.config import TrainConfig
    from pipeline.workdir import Workdir, build_artifacts

    catalog, synthetic = tiny_catalog
    work = Workdir(tmp_path_factory.mktemp("work"))
    build_artifacts(catalog, work, TrainConfig(epochs=3, batch_size=64, lr=1e-3), progress=False)
    return Built(catalog, work.checkpoint, work.model, work.index, synthetic)


@pytest.fixture(scope="session")
def track_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A track model trained on 60 synthetic artists (`tests.tracks_data`, seed 0), by the CLI."""
    from cli.main import main
    from tests.tracks_data import track_catalog

    root = tmp_path_factory.mktemp("tracks")
    track_catalog(root / "train", n_artists=60, tracks=6, seed=0)
    assert main(["-q", "tracks", "train", str(root / "train"), "--out", str(root / "tm"), "--iterations", "400"]) == 0
    return root / "tm"
