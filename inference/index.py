"""Load a built index folder and check it against its manifest and the model it was built with."""

from __future__ import annotations

import functools
import io
import json
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.artifacts import (
    ARTIST_ITEMS_FILE,
    INDEX_ARTISTS_FILE,
    INDEX_FILE,
    MODALITY_EMBEDDINGS_FILE,
    NEIGHBOUR_SCORES_FILE,
    NEIGHBOURS_FILE,
    TAG_COUNTS_FILE,
)
from core.balance import Balance, modality_bits, modality_mask
from core.errors import CmarError
from core.manifest import IndexManifest, ModelManifest, read_files, read_manifest
from core.vectors import as_candidates, as_queries


@dataclass
class ItemLists:
    """Each artist's items of one set modality (CSR): artist r owns codes[offsets[r]:offsets[r+1]], heaviest first."""

    vocab: list[str]  # names of the codes
    offsets: np.ndarray  # (N + 1,) int64
    codes: np.ndarray  # (nnz,) int32 indices into vocab
    weights: np.ndarray  # (nnz,) float32 raw weights

    def of(self, row: int) -> dict[str, float]:
        """Artist `row`'s items and their weights, heaviest first."""
        span = slice(int(self.offsets[row]), int(self.offsets[row + 1]))
        return {
            self.vocab[c]: float(w) for c, w in zip(self.codes[span].tolist(), self.weights[span].tolist(), strict=True)
        }


@dataclass
class ArtistDetails:
    """What explanations read of the indexed artists: their own modality embeddings and their items."""

    embeddings: dict[str, np.ndarray]  # modality -> (N, D) float16 unit embeddings, zero rows where absent
    items: dict[str, ItemLists]  # set modality -> its item lists


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
    columns: np.ndarray | None = None  # (stored dim, N) an exact index's vectors, contiguous by dimension
    popularity: np.ndarray | None = None  # (N,) the catalogue's popularity of each artist, when it gave one
    tag_counts: dict[str, dict[str, int]] | None = None  # set modality -> item -> artists with it (None: older)
    details: ArtistDetails | None = None  # for explanations (None: an index built before they were written)

    @property
    def matrix(self) -> np.ndarray | None:
        """(N, stored dim) the vectors of an exact index (a view of `columns`), or None for a graph index."""
        return None if self.columns is None else self.columns.T

    @property
    def version(self) -> str:
        """The index version from the manifest."""
        return self.manifest.index_version

    def __len__(self) -> int:
        return len(self.artist_ids)

    @functools.cached_property
    def popularity_prior(self) -> np.ndarray:
        """(N,) float32 z-score of log(1 + popularity) over the indexed artists; zeros without popularity.

        The prior that thin cold-start queries add to their ranking (`service.search.prior_weight`).
        """
        if self.popularity is None or len(self.popularity) < 2:
            return np.zeros(len(self.artist_ids), dtype=np.float32)
        logs = np.log1p(np.maximum(self.popularity.astype(np.float64), 0))
        spread = logs.std()
        return ((logs - logs.mean()) / spread if spread > 0 else logs * 0).astype(np.float32)

    @functools.cached_property
    def unit_vectors(self) -> np.ndarray:
        """(N, D) every artist's unit vector, without the stored hub penalty, one contiguous row per artist,
        made once and kept (a second copy beside the index: N x D x 4 bytes). Gathering a cold start's
        thousand candidates from it is three times faster than from `columns`; a graph index's are
        reconstructed from the graph."""
        if self.columns is not None:
            return np.ascontiguousarray(self.columns[: self.manifest.embedding_dim].T)
        return _reconstruct(self, np.arange(len(self)))

    @functools.cached_property
    def balance(self) -> Balance:
        """The modality balance the index ranks with (`core.balance`; one neutral slot without one)."""
        return Balance.of(self.manifest.balance)

    @functools.cached_property
    def slots(self) -> np.ndarray:
        """(N,) each artist's slot in the modality balance (all 0 without one)."""
        return self.balance.slots(self.modality_bits)

    @functools.cached_property
    def penalties(self) -> np.ndarray:
        """(S, N) float32: what a query of balance slot s subtracts from each artist's cosine to rank it,
        the hub penalty less the balance's offset B[s, slot] (row 0 is `penalty` without a balance)."""
        return self.balance.penalties(self.penalty, self.slots)

    def slot_of(self, modalities: list[str] | tuple[str, ...]) -> int:
        """The balance slot of a query made of these modalities."""
        return self.balance.slot(modality_mask(modalities))

    @functools.cached_property
    def modality_bits(self) -> np.ndarray:
        """(N,) int64: bit m set when the artist is indexed with modality m of `core.modalities.MODALITY_NAMES`."""
        return modality_bits(self.modalities)

    @property
    def hub_beta(self) -> float:
        """Weight of the hub penalty (0 = ranking by cosine)."""
        return self.manifest.hub.beta

    def search(
        self, queries: np.ndarray, k: int, slots: np.ndarray | None = None, by_cosine: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top k of unit query vectors (B, D): cosines (B, k) and index rows (B, k), -1 where none.

        Ranked by cosine minus the candidate's hub penalty plus the modality balance's offset for
        each query's balance slot (`slots`, (B,); `slot_of`; default the slot of every modality the
        balance knows); the scores returned are the cosines. `by_cosine`: ranked by cosine alone
        (the build's neighbours, which hub penalties and self-checks are defined by).
        """
        q = np.ascontiguousarray(queries, dtype=np.float32)
        slots = np.full(len(q), self.balance.neutral, dtype=np.int64) if slots is None else np.asarray(slots)
        extra = self.manifest.stored_dim - self.manifest.embedding_dim
        if by_cosine and extra:
            q = np.concatenate([q, np.zeros((len(q), extra), dtype=np.float32)], axis=1)
        elif extra:
            q = as_queries(q, slots, self.balance.width)
        k = min(k, len(self))
        if self.columns is not None and len(q) <= SMALL_BATCH and k > 0:
            scores, rows = _top_k(q @ self.columns, k)
        else:
            scores, rows = self.index.search(q, k)
        if by_cosine:
            return scores, rows
        subtracted = self.penalties[slots[:, None], np.maximum(rows, 0)]
        return scores + np.where(rows >= 0, subtracted, 0), rows


SMALL_BATCH = 256  # up to this many queries (the service's), an exact index is searched with one matrix product
BLOCK = 64  # scores per block in `_top_k`'s bound


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest of each row of scores (B, N), best first: values and columns (B, k).

    For the service's queries this is faster than FAISS's flat search here (one BLAS matrix
    product, then a selection), with the same results up to ties. The selection first bounds
    each row's k-th largest score from below by the k-th largest of its block maxima (k blocks
    each hold a score at least that large), then sorts only the scores that reach the bound:
    a few times k, where a partition of the whole row would touch every score several times.
    """
    n_rows, n = scores.shape
    full = n // BLOCK * BLOCK
    if k >= n or k > full // BLOCK:  # too few blocks to bound: sort or partition the whole row
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < n else np.argsort(-scores, axis=1)
        values = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-values, axis=1, kind="stable")
        return np.take_along_axis(values, order, axis=1), np.take_along_axis(top, order, axis=1).astype(np.int64)
    maxima = scores[:, :full].reshape(n_rows, -1, BLOCK).max(axis=2)
    if full < n:
        maxima = np.concatenate([maxima, scores[:, full:].max(axis=1, keepdims=True)], axis=1)
    bound = np.partition(maxima, -k, axis=1)[:, -k]
    values = np.empty((n_rows, k), dtype=scores.dtype)
    columns = np.empty((n_rows, k), dtype=np.int64)
    for b in range(n_rows):
        reach = np.flatnonzero(scores[b] >= bound[b])
        best = reach[np.argsort(-scores[b, reach], kind="stable")[:k]]
        columns[b], values[b] = best, scores[b, best]
    return values, columns


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
    loaded = LoadedIndex(
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
        columns=_columns(index),
        tag_counts=_tag_counts(files, folder),
        details=_details(files, folder, index.ntotal, manifest.embedding_dim),
        popularity=(
            table.column("popularity").to_numpy().astype(np.float32) if "popularity" in table.column_names else None
        ),
    )
    _check_stored(loaded, folder)
    return loaded


STORED_CHECKS = 256  # artists whose stored extra coordinates are checked at load


def _check_stored(loaded: LoadedIndex, folder: Path) -> None:
    """Refuse an index whose stored extra coordinates disagree with its artists' hub penalties and its
    manifest's modality balance (the manifest is not hashed: an edited balance would rank the service's
    rescored answers differently from the index's own). A spread sample of artists is checked."""
    dim, n = loaded.manifest.embedding_dim, len(loaded)
    if loaded.manifest.stored_dim == dim or n == 0:
        return
    rows = np.unique(np.linspace(0, n - 1, num=min(STORED_CHECKS, n)).astype(np.int64))
    stored = np.asarray(loaded.index.reconstruct_batch(rows), dtype=np.float32)
    expected = as_candidates(stored[:, :dim], loaded.penalties[:, rows])[:, dim:]
    if not np.allclose(stored[:, dim:], expected, atol=1e-5):
        raise CmarError(
            f"{folder}: the stored vectors do not match the artists' hub penalties and the manifest's modality "
            "balance (was manifest.json edited?); rebuild the index (cmar build-index)"
        )


def _tag_counts(files: dict[str, bytes], folder: Path) -> dict[str, dict[str, int]] | None:
    """The index's tag counts (None for an index built before they were written)."""
    if TAG_COUNTS_FILE not in files:
        return None
    try:
        counts = json.loads(files[TAG_COUNTS_FILE])
        if not all(isinstance(v, dict) and all(isinstance(c, int) for c in v.values()) for v in counts.values()):
            raise ValueError("expected {modality: {item: count}}")
    except (ValueError, AttributeError) as exc:
        raise CmarError(f"{folder / TAG_COUNTS_FILE}: not readable ({exc})") from None
    return {str(m): {str(t): int(c) for t, c in v.items()} for m, v in counts.items()}


def _details(files: dict[str, bytes], folder: Path, n: int, dim: int) -> ArtistDetails | None:
    """The artists' modality embeddings and item lists (None for an index built before they were written)."""
    if MODALITY_EMBEDDINGS_FILE not in files or ARTIST_ITEMS_FILE not in files:
        return None
    try:
        with np.load(io.BytesIO(files[MODALITY_EMBEDDINGS_FILE]), allow_pickle=False) as data:
            embeddings = {name: data[name] for name in data.files}
        table = pq.read_table(pa.BufferReader(files[ARTIST_ITEMS_FILE]))
    except (ValueError, OSError, pa.ArrowInvalid) as exc:
        raise CmarError(f"{folder}: the artists' explanation data does not load ({exc})") from None
    for name, array in embeddings.items():
        if array.shape != (n, dim):
            raise CmarError(f"{folder / MODALITY_EMBEDDINGS_FILE}: {name} has shape {array.shape}, expected {(n, dim)}")
    items: dict[str, ItemLists] = {}
    for column in table.column_names:
        if not column.endswith("_items"):
            continue
        name = column.removesuffix("_items")
        if f"{name}_weights" not in table.column_names:
            raise CmarError(f"{folder / ARTIST_ITEMS_FILE}: {column} has no {name}_weights column")
        lists = table.column(column).combine_chunks()
        weights = table.column(f"{name}_weights").combine_chunks()
        if len(lists) != n:
            raise CmarError(f"{folder / ARTIST_ITEMS_FILE}: {len(lists)} rows for {n} artists")
        encoded = lists.flatten().dictionary_encode()
        items[name] = ItemLists(
            vocab=encoded.dictionary.to_pylist(),
            offsets=lists.offsets.to_numpy().astype(np.int64),
            codes=encoded.indices.to_numpy(zero_copy_only=False).astype(np.int32),
            weights=weights.flatten().to_numpy(zero_copy_only=False).astype(np.float32),
        )
    return ArtistDetails(embeddings, items)


def _columns(index: faiss.Index) -> np.ndarray | None:
    """An exact index's vectors as (stored dim, N), contiguous: a batch of queries times it is one fast BLAS call."""
    return np.ascontiguousarray(index.reconstruct_n(0, index.ntotal).T) if isinstance(index, faiss.IndexFlat) else None


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
    """The unit vectors of index rows (B, D), without the stored hub penalty (a contiguous copy)."""
    if loaded.columns is not None:
        return loaded.unit_vectors[np.atleast_1d(rows)]
    return _reconstruct(loaded, rows)


def _reconstruct(loaded: LoadedIndex, rows: np.ndarray) -> np.ndarray:
    """A graph index's unit vectors of `rows` (B, D), from the graph's stored vectors."""
    keys = np.ascontiguousarray(np.atleast_1d(rows), dtype=np.int64)
    stored = np.asarray(loaded.index.reconstruct_batch(keys), dtype=np.float32)
    return stored[:, : loaded.manifest.embedding_dim]
