"""Load a built index folder and check it against its manifest and the model it was built with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import pyarrow.parquet as pq

from core.artifacts import INDEX_ARTISTS_FILE, INDEX_FILE
from core.errors import CmarError
from core.manifest import IndexManifest, ModelManifest, read_manifest
from core.vectors import as_queries


@dataclass
class LoadedIndex:
    """A FAISS index and, in index order, the artists it holds."""

    manifest: IndexManifest
    index: faiss.Index
    artist_ids: list[str]
    names: list[str]
    modalities: list[list[str]]
    row_of: dict[str, int]
    penalty: np.ndarray  # (N,) hub penalty of each artist (zeros without one)

    @property
    def version(self) -> str:
        """The index version from the manifest."""
        return self.manifest.index_version

    def __len__(self) -> int:
        return len(self.artist_ids)

    @property
    def hub_beta(self) -> float:
        """Weight of the hub penalty (0 = ranking by cosine)."""
        return float(self.manifest.hub.get("beta", 0.0))

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top k of unit query vectors (B, D): cosines (B, k) and index rows (B, k), -1 where none.

        Ranked by cosine minus the candidate's hub penalty when the index has one; the scores
        returned are the cosines.
        """
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if self.hub_beta > 0:
            q = as_queries(q)
        scores, rows = self.index.search(q, min(k, len(self)))
        return scores + np.where(rows >= 0, self.penalty[np.maximum(rows, 0)], 0), rows


def load_index(folder: Path, model: ModelManifest | None = None, verify: bool = True) -> LoadedIndex:
    """Read an index folder; if `model` is given, refuse an index built with another model version."""
    folder = Path(folder)
    manifest = read_manifest(folder, IndexManifest, verify=verify)
    if model is not None and manifest.model.model_version != model.model_version:
        raise CmarError(
            f"{folder}: index was built with model {manifest.model.model_version}, "
            f"but the model folder holds {model.model_version}; rebuild the index (cmar build-index)"
        )
    try:
        index = faiss.read_index(str(folder / INDEX_FILE))
    except RuntimeError as exc:
        raise CmarError(f"{folder / INDEX_FILE}: FAISS cannot read it ({str(exc).splitlines()[0]})") from None
    if index.d != manifest.stored_dim or index.ntotal != manifest.n_artists:
        raise CmarError(
            f"{folder / INDEX_FILE}: expected {manifest.n_artists} vectors of dimension {manifest.stored_dim}, "
            f"found {index.ntotal} of dimension {index.d}"
        )
    table = pq.read_table(folder / INDEX_ARTISTS_FILE)
    ids = table.column("artist_id").to_pylist()
    if len(ids) != index.ntotal:
        raise CmarError(f"{folder / INDEX_ARTISTS_FILE}: {len(ids)} artists for {index.ntotal} index vectors")
    return LoadedIndex(
        manifest=manifest,
        index=index,
        artist_ids=ids,
        names=table.column("name").to_pylist(),
        modalities=table.column("modalities").to_pylist(),
        row_of={artist: i for i, artist in enumerate(ids)},
        penalty=(
            table.column("hub_penalty").to_numpy().astype(np.float32)
            if "hub_penalty" in table.column_names
            else np.zeros(len(ids), dtype=np.float32)
        ),
    )


def vectors_of(loaded: LoadedIndex, rows: np.ndarray) -> np.ndarray:
    """The unit vectors of index rows (B, D), without the stored hub penalty."""
    keys = np.ascontiguousarray(np.atleast_1d(rows), dtype=np.int64)
    stored = np.asarray(loaded.index.reconstruct_batch(keys), dtype=np.float32)
    return stored[:, : loaded.manifest.embedding_dim]
