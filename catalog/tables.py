"""In-memory catalogue: artists and one aligned table per modality."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from core.modalities import MODALITY_NAMES
from core.vectors import item_weights

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass
class VectorTable:
    """A vector modality aligned with the artists: row i belongs to artist i."""

    present: BoolArray  # (N,) which artists have this modality
    values: FloatArray  # (N, d) the vectors; rows of absent artists are zero

    @property
    def dim(self) -> int:
        """Input dimension of the modality."""
        return int(self.values.shape[1])


@dataclass
class SetTable:
    """A set modality (tags) in CSR form, items of each artist sorted by weight, heaviest first."""

    vocab: list[str]  # (V,) item names
    vocab_vectors: FloatArray  # (V, d) one vector per item
    indptr: IntArray  # (N + 1,) artist i owns items[indptr[i]:indptr[i+1]]
    items: IntArray  # (nnz,) indices into vocab
    weights: FloatArray  # (nnz,)

    @classmethod
    def from_rows(
        cls, vocab: list[str], vocab_vectors: FloatArray, n: int, rows: IntArray, items: IntArray, weights: FloatArray
    ) -> SetTable:
        """Build from one (artist row, item, weight) per entry, ordering each artist's items heaviest first."""
        rows, items = np.asarray(rows, dtype=np.int64), np.asarray(items, dtype=np.int64)
        weights = np.asarray(weights, dtype=np.float32)
        order = np.lexsort((items, -weights, rows))  # by artist, heaviest first, ties by item index
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.add.at(indptr, rows + 1, 1)
        return cls(
            vocab=list(vocab),
            vocab_vectors=vocab_vectors,
            indptr=np.cumsum(indptr),
            items=items[order],
            weights=weights[order],
        )

    @property
    def present(self) -> BoolArray:
        """(N,) which artists have at least one item."""
        return np.diff(self.indptr) > 0

    @property
    def dim(self) -> int:
        """Dimension of the item vectors."""
        return int(self.vocab_vectors.shape[1])

    def top_items(self, rows: npt.ArrayLike, max_items: int, trim: bool = False) -> tuple[IntArray, BoolArray]:
        """The heaviest `max_items` items of each artist in `rows`, padded.

        Returns item indices (B, T) and a mask (B, T); padded slots hold 0. T = max_items, or
        with `trim` the longest list among `rows` (at least 1), so that short lists cost less.
        """
        rows = np.asarray(rows, dtype=np.int64)
        starts = self.indptr[rows]
        lengths = np.minimum(self.indptr[rows + 1] - starts, max_items)
        width = max(1, int(lengths.max(initial=0))) if trim else max_items
        slots = np.arange(width)
        mask = slots[None, :] < lengths[:, None]  # (B, T)
        positions = np.where(mask, starts[:, None] + slots[None, :], 0)
        ids = np.where(mask, self.items[positions] if self.items.size else 0, 0)
        return ids.astype(np.int64), mask

    def mean_vectors(self) -> FloatArray:
        """(N, d) the weight-averaged item vector of each artist (zero for artists without items)."""
        n = len(self.indptr) - 1
        owners = np.repeat(np.arange(n), np.diff(self.indptr))
        sums = np.zeros((n, self.dim), dtype=np.float64)
        np.add.at(sums, owners, self.vocab_vectors[self.items] * self.weights[:, None])
        totals = np.zeros(n)
        np.add.at(totals, owners, self.weights)
        return (sums / np.maximum(totals, 1e-12)[:, None]).astype(np.float32)

    def lengths(self, rows: npt.ArrayLike) -> IntArray:
        """(B,) number of items of each artist in `rows`."""
        rows = np.asarray(rows, dtype=np.int64)
        return np.asarray(self.indptr[rows + 1] - self.indptr[rows], dtype=np.int64)

    def padded_inputs(self, rows: npt.ArrayLike, max_items: int, trim: bool = False) -> tuple[FloatArray, FloatArray]:
        """Set-encoder inputs of `rows`: top items' vectors (B, T, d) and pooling weights (B, T), 0 = padding.

        T as in `top_items`.
        """
        ids, mask = self.top_items(rows, max_items, trim)
        rows = np.asarray(rows, dtype=np.int64)
        positions = np.where(mask, self.indptr[rows][:, None] + np.arange(mask.shape[1])[None, :], 0)
        weights = np.where(mask, item_weights(self.weights[positions]) if self.weights.size else 0, 0)
        return self.vocab_vectors[ids] * mask[:, :, None], weights.astype(np.float32)


@dataclass
class TrackTable:
    """Tracks aligned with a catalogue: track t belongs to artist row `rows[t]`."""

    track_ids: npt.NDArray[np.object_]  # (T,) unique ids
    rows: npt.NDArray[np.int64]  # (T,) artist rows of the catalogue
    vectors: npt.NDArray[np.float32]  # (T, d) audio features, as given
    tags: list[tuple[str, ...]] | None = None  # (T,) each track's tags, or None when the table has none

    @property
    def dim(self) -> int:
        """Input dimension of a track's audio."""
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.track_ids)

    def moved(self, new_row: npt.NDArray[np.int64]) -> TrackTable:
        """The tracks of the artists that stay, renumbered: `new_row[old row]` is an artist's new row, -1 if it goes."""
        ok = new_row[self.rows] >= 0
        tags = [t for t, k in zip(self.tags, ok, strict=True) if k] if self.tags is not None else None
        return TrackTable(self.track_ids[ok], new_row[self.rows][ok], self.vectors[ok], tags)

    def by_artist(self) -> dict[int, npt.NDArray[np.int64]]:
        """Artist row -> the indices of its tracks, in table order."""
        order = np.argsort(self.rows, kind="stable")
        rows = self.rows[order]
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if rows.size else np.zeros(0, dtype=np.int64)
        ends = np.r_[starts[1:], rows.size]
        return {int(rows[s]): order[s:e] for s, e in zip(starts, ends, strict=True)}


Table = VectorTable | SetTable


@dataclass
class Catalog:
    """Artists and their modalities; every table is aligned with `artist_ids`."""

    artist_ids: npt.NDArray[np.str_]  # (N,)
    names: npt.NDArray[np.str_]  # (N,)
    popularity: FloatArray | None  # (N,) or None when unknown
    modalities: dict[str, Table] = field(default_factory=dict)
    tracks: TrackTable | None = None  # the artists' tracks (catalog.tracks), when the catalogue has them

    @property
    def n_artists(self) -> int:
        """Number of artists."""
        return len(self.artist_ids)

    def present(self) -> BoolArray:
        """(M, N) availability of every registry modality (False for modalities the catalogue lacks)."""
        out = np.zeros((len(MODALITY_NAMES), self.n_artists), dtype=bool)
        for i, name in enumerate(MODALITY_NAMES):
            if name in self.modalities:
                out[i] = self.modalities[name].present
        return out

    def input_dims(self) -> dict[str, int]:
        """Input dimension of each modality the catalogue holds."""
        return {name: table.dim for name, table in self.modalities.items()}
