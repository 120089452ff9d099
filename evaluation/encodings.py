"""Vectors the evaluations score: the product index's fused vectors, and each modality through its encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from catalog.tables import Catalog
from core.fusion import Fusion
from core.manifest import ModelManifest, read_manifest
from index_build.build import encode_modalities
from inference.encoder import OnnxModel
from inference.index import load_index, vectors_of

BATCH = 4096  # artists encoded at a time


def index_vectors(index_dir: Path, artist_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The product index's fused unit vectors aligned with catalogue rows (N, D), and which rows it holds (N,)."""
    loaded = load_index(index_dir)
    row_of = {a: i for i, a in enumerate(artist_ids)}
    rows = np.asarray([row_of[a] for a in loaded.artist_ids])
    vectors = np.zeros((len(artist_ids), loaded.manifest.embedding_dim), dtype=np.float32)
    vectors[rows] = vectors_of(loaded, np.arange(len(loaded)))
    held = np.zeros(len(artist_ids), dtype=bool)
    held[rows] = True
    return vectors, held


def modality_encodings(catalog: Catalog, model_dir: Path) -> dict[str, np.ndarray]:
    """Each modality alone through the exported encoders (never completed): name -> (N, D), zero rows where absent."""
    model = OnnxModel(model_dir)
    names = list(catalog.modalities)
    out = {name: np.zeros((catalog.n_artists, model.dim), dtype=np.float32) for name in names}
    for begin in range(0, catalog.n_artists, BATCH):
        rows = np.arange(begin, min(begin + BATCH, catalog.n_artists))
        stack, _ = encode_modalities(catalog, model, rows, names)
        for m, name in enumerate(names):
            out[name][rows] = stack[m]
    return out


def model_fusion(model_dir: Path) -> Fusion:
    """How a model fuses its modalities (weights and completion), from its verified manifest."""
    manifest = read_manifest(model_dir, ModelManifest)
    return Fusion.load(model_dir, manifest.modality_weights, manifest.completion, manifest.embedding_dim)
