"""Vectors the evaluations score: the product index's fused vectors, and each modality through its encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from catalog.tables import Catalog
from index_build.build import encode_catalog
from index_build.encoder import OnnxModel
from index_build.index import load_index, vectors_of


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
    """Each modality alone through the exported encoders: name -> (N, D), zero rows where absent."""
    model = OnnxModel(model_dir)
    out = {}
    for name, table in catalog.modalities.items():
        rows = np.flatnonzero(table.present)
        vectors = np.zeros((catalog.n_artists, model.dim), dtype=np.float32)
        vectors[rows] = encode_catalog(catalog, model, rows, [name], batch_size=4096, progress=False)
        out[name] = vectors
    return out
