"""Load a built index folder and check it against its manifest and the model it was built with."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.artifacts import INDEX_ARTISTS_FILE, INDEX_FILE, NEIGHBOUR_SCORES_FILE, NEIGHBOURS_FILE
from core.errors import CmarError
from core.manifest import IndexManifest, ModelManifest, read_files, read_manifest
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
    neighbours: np.ndarray | None = None  # (N, K) precomputed similar rows, or None
    neighbour_scores: np.ndarray | None = None  # (N, K) their cosines
    matrix: np.ndarray | None = None  # (N, stored dim) the vectors of an exact index, for small searches

    @property
    def version(self) -> str:
        """The index version from the manifest."""
        return self.manifest.index_version

    def __len__(self) -> int:
        return len(self.artist_ids)

    @property
    def hub_beta(self) -> float:
        """Weight of the hub penalty (0 = ranking by cosine)."""
        return self.manifest.hub.beta

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top k of unit query vectors (B, D): cosines (B, k) and index rows (B, k), -1 where none.

        Ranked by cosine minus the candidate's hub penalty when the index has one; the scores
        returned are the cosines.
        """
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if self.hub_beta > 0:
            q = as_queries(q)
        k = min(k, len(self))
        if self.matrix is not None and len(q) <= SMALL_BATCH and k > 0:
            scores, rows = _top_k(q @ self.matrix.T, k)
        else:
            scores, rows = self.index.search(q, k)
        return scores + np.where(rows >= 0, self.penalty[np.maximum(rows, 0)], 0), rows


SMALL_BATCH = 16  # up to this many queries, an exact index is searched with one matrix product


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest of each row of scores (B, N), best first: values and columns (B, k).

    For the service's single queries this is faster than FAISS's flat search here (BLAS
    matrix-vector product, then a partial sort), with the same results up to ties.
    """
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.argsort(-scores, axis=1)
    values = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(values, order, axis=1), np.take_along_axis(top, order, axis=1).astype(np.int64)


def _file(files: dict[str, bytes], folder: Path, name: str) -> bytes:
    if name not in files:
        raise CmarError(f"{folder}: the manifest does not list {name}")
    return files[name]


def load_index(folder: Path, model: ModelManifest | None = None, verify: bool = True) -> LoadedIndex:
    """Read an index folder; if `model` is given, refuse an index built with another model version.

    Every file is read once, checked against the manifest (sha256 if `verify`) and loaded from
    those bytes (`core.manifest.read_files`). Raises CmarError naming the file.
    """
    folder = Path(folder)
    manifest = read_manifest(folder, IndexManifest, verify=False)
    if model is not None and manifest.model.model_version != model.model_version:
        raise CmarError(
            f"{folder}: index was built with model {manifest.model.model_version}, "
            f"but the model folder holds {model.model_version}; rebuild the index (cmar build-index)"
        )
    if model is not None and manifest.model != model:
        # The version hashes the model's files, not its manifest: the copy the index kept at build
        # time is what the manifest must still say (encoder files, dimensions, fusion weights).
        changed = sorted(k for k in ModelManifest.model_fields if getattr(manifest.model, k) != getattr(model, k))
        raise CmarError(
            f"{folder}: the model folder's manifest differs from the one this index was built with "
            f"(in {', '.join(changed)}); was it edited? Export and build again"
        )
    files = read_files(folder, manifest, verify)
    try:
        index = faiss.deserialize_index(np.frombuffer(_file(files, folder, INDEX_FILE), dtype=np.uint8))
    except RuntimeError as exc:
        raise CmarError(f"{folder / INDEX_FILE}: FAISS cannot read it ({str(exc).splitlines()[0]})") from None
    if index.d != manifest.stored_dim or index.ntotal != manifest.n_artists:
        raise CmarError(
            f"{folder / INDEX_FILE}: expected {manifest.n_artists} vectors of dimension {manifest.stored_dim}, "
            f"found {index.ntotal} of dimension {index.d}"
        )
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = manifest.search.ef_search or index.hnsw.efSearch
    neighbours, neighbour_scores = _neighbour_lists(folder, manifest, files)
    try:
        table = pq.read_table(pa.BufferReader(_file(files, folder, INDEX_ARTISTS_FILE)))
    except (pa.ArrowInvalid, OSError) as exc:
        raise CmarError(f"{folder / INDEX_ARTISTS_FILE}: not a readable Parquet file ({exc})") from None
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
        neighbours=neighbours,
        neighbour_scores=neighbour_scores,
        matrix=index.reconstruct_n(0, index.ntotal) if isinstance(index, faiss.IndexFlat) else None,
    )


def _neighbour_lists(
    folder: Path, manifest: IndexManifest, files: dict[str, bytes]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The precomputed similar lists, checked against the manifest (None, None when there are none)."""
    if manifest.neighbours_k == 0:
        return None, None
    expected = (manifest.n_artists, manifest.neighbours_k)
    try:
        lists = np.load(io.BytesIO(_file(files, folder, NEIGHBOURS_FILE)), allow_pickle=False)
        scores = np.load(io.BytesIO(_file(files, folder, NEIGHBOUR_SCORES_FILE)), allow_pickle=False)
    except ValueError as exc:
        raise CmarError(f"{folder}: the precomputed lists do not load ({exc})") from None
    for name, array in ((NEIGHBOURS_FILE, lists), (NEIGHBOUR_SCORES_FILE, scores)):
        if array.shape != expected:
            raise CmarError(f"{folder / name}: expected shape {expected}, found {array.shape}")
    if lists.size and (lists.min() < 0 or lists.max() >= manifest.n_artists):
        raise CmarError(f"{folder / NEIGHBOURS_FILE}: rows outside 0..{manifest.n_artists - 1}")
    return lists, scores


def vectors_of(loaded: LoadedIndex, rows: np.ndarray) -> np.ndarray:
    """The unit vectors of index rows (B, D), without the stored hub penalty."""
    keys = np.ascontiguousarray(np.atleast_1d(rows), dtype=np.int64)
    stored = np.asarray(loaded.index.reconstruct_batch(keys), dtype=np.float32)
    return stored[:, : loaded.manifest.embedding_dim]
