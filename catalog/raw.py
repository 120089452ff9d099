"""A catalogue from a team's own raw files: listening counts, tag counts and audio features (CSV).

Values are read as written: no string ("NA", "NULL", "nan", ...) is taken for a missing
value, names are kept verbatim, tag names are normalised by `core.names.normalize_tag`.
Every row that is dropped (an unknown artist, an empty, zero or negative count, a tag used
for too few artists) or merged (a repeated user-artist or artist-tag pair, summed) is counted
in `RawCatalog.changes`, which `cmar catalog from-raw` logs in one line and writes into the
catalogue's manifest. A value that cannot be read (a count that is not a number, an artist id
the API could not address) is an error naming the file and the row.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from catalog.csvfiles import lookup, read_csv, strings
from catalog.featurize import FeaturizeConfig, als_item_factors, standardise, tag_embedding
from catalog.tables import Catalog, TrackTable, VectorTable
from catalog.tracks import MAX_TRACK_TAGS, derive_audio
from core.errors import CmarError
from core.names import MIN_TAG_WEIGHT, artist_id_problem, normalize_tag

log = logging.getLogger(__name__)

COLUMNS = {
    "artists": ("artist_id", "name"),
    "plays": ("user_id", "artist_id", "count"),
    "tags": ("artist_id", "tag", "count"),
    "audio": ("artist_id",),
    "tracks": ("track_id", "artist_id"),
}
TRACK_TAGS_COLUMN = "tags"  # optional column of the tracks file: tags separated by ";"


@dataclass
class RawCatalog:
    """A featurized catalogue and what reading the raw files changed: rows dropped or merged, by reason."""

    catalog: Catalog
    changes: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """The changes in one line ("no row dropped or merged" when there are none)."""
        if not self.changes:
            return "no row dropped or merged"
        return "; ".join(f"{reason}: {count}" for reason, count in self.changes.items())


@dataclass(frozen=True)
class CsvFormat:
    """How the raw files are written."""

    encoding: str = "utf-8"
    delimiter: str = ","


MAX_VALUE = 1e15  # larger counts and features are mistakes (and overflow the featurizers' sums)


def _numbers(path: Path, table: pa.Table, column: str, allow_empty: bool) -> np.ndarray:
    """A text column parsed as float64; empty cells (and "nan") are NaN if `allow_empty`, else an error.

    A cell that is not a number, or one of magnitude 1e15 or more (infinity included), is a
    CmarError naming the file, the row and the value.
    """
    texts = strings(table, column)
    out = np.empty(len(texts), dtype=np.float64)
    for row, text in enumerate(texts.tolist()):
        value = (text or "").strip()
        try:
            out[row] = float(value) if value else np.nan
        except ValueError:
            raise CmarError(f"{path}: row {row + 2}: column {column} must hold a number, got {text!r}") from None
        if not allow_empty and not np.isfinite(out[row]):
            raise CmarError(f"{path}: row {row + 2}: column {column} must hold a finite number, got {text!r}")
        if abs(out[row]) >= MAX_VALUE:
            raise CmarError(f"{path}: row {row + 2}: column {column} holds {text!r}; values must be below 1e15")
    return out


class _Reader:
    """Reads the raw files, counting every dropped or merged row."""

    def __init__(self, fmt: CsvFormat) -> None:
        self.fmt = fmt
        self.changes: Counter[str] = Counter()

    def table(self, path: Path, kind: str) -> pa.Table:
        return read_csv(path, COLUMNS[kind], encoding=self.fmt.encoding, delimiter=self.fmt.delimiter, as_strings=True)

    def drop(self, what: str, mask: np.ndarray) -> None:
        """Count the rows in `mask` as dropped for reason `what`."""
        n = int(np.count_nonzero(mask))
        if n:
            self.changes[what] += n

    def rows(self, path: Path, kind: str, table: pa.Table, row_of: dict[str, int]) -> np.ndarray:
        rows = lookup(strings(table, "artist_id"), row_of)
        self.drop(f"{kind} rows naming an artist missing from the artists file (dropped)", rows < 0)
        return rows

    def counts(self, path: Path, kind: str, table: pa.Table) -> np.ndarray:
        """The count column; rows with an empty/NaN, zero or negative count are counted as dropped."""
        counts = _numbers(path, table, "count", allow_empty=True)
        self.drop(f"{kind} rows with an empty or NaN count (dropped)", np.isnan(counts))
        self.drop(f"{kind} rows with a zero count (dropped)", counts == 0)
        self.drop(f"{kind} rows with a negative count (dropped)", counts < 0)
        tiny = (counts > 0) & (counts < MIN_TAG_WEIGHT)
        self.drop(f"{kind} rows with a count under {MIN_TAG_WEIGHT:g} (dropped)", tiny)
        return np.where(tiny, 0.0, counts)


def read_raw(
    artists: Path,
    plays: Path | None = None,
    tags: Path | None = None,
    audio: Path | None = None,
    tracks: Path | None = None,
    config: FeaturizeConfig | None = None,
    fmt: CsvFormat | None = None,
) -> RawCatalog:
    """Featurize raw files into a catalogue: CF by ALS of the plays, tag vectors by PPMI + SVD, standardised audio.

    `tracks` (CSV: track_id, artist_id, optional `tags` separated by ";", and numeric feature
    columns) become the catalogue's track table, features standardised like the audio; artists
    with tracks and no audio row get the mean of their tracks (`catalog.tracks.derive_audio`).

    Raises CmarError naming the file (and row) for anything that cannot be read, and when
    nothing is left to featurize.
    """
    config = config or FeaturizeConfig()
    reader = _Reader(fmt or CsvFormat())
    table = reader.table(artists, "artists")
    if table.num_rows == 0:
        raise CmarError(f"{artists}: no artist rows below the header")
    ids = _unique_ids(artists, strings(table, "artist_id"), "artist_id")
    names = strings(table, "name")
    row_of = {a: i for i, a in enumerate(ids)}
    n = len(ids)
    popularity = None
    if "popularity" in table.column_names:
        values = _numbers(artists, table, "popularity", allow_empty=True)
        reader.drop("artists with no popularity (read as 0)", np.isnan(values))  # values below 1e15: _numbers
        if (values < 0).any():
            row = int(np.flatnonzero(values < 0)[0])
            raise CmarError(f"{artists}: row {row + 2}: popularity must be >= 0, got {values[row]:g}")
        popularity = np.nan_to_num(values, nan=0.0).astype(np.float32)
    catalog = Catalog(artist_ids=ids, names=names, popularity=popularity)

    if plays is not None:
        t = reader.table(plays, "plays")
        rows = reader.rows(plays, "plays", t, row_of)
        counts = reader.counts(plays, "plays", t)
        users = strings(t, "user_id")
        ok = (rows >= 0) & (counts > 0) & np.isfinite(counts)
        if not ok.any():
            raise CmarError(f"{plays}: no row with a known artist and a positive count; nothing to featurize")
        user_of = {u: i for i, u in enumerate(dict.fromkeys(users[ok]))}
        user_rows = np.fromiter((user_of[u] for u in users[ok]), dtype=np.int64, count=int(ok.sum()))
        _count_repeats(reader, "plays", user_rows * n + rows[ok])
        matrix = sp.csr_matrix((counts[ok], (user_rows, rows[ok])), shape=(len(user_of), n))  # repeats summed
        present = np.asarray((matrix > 0).sum(axis=0)).ravel() > 0
        factors = als_item_factors(matrix, config)
        catalog.modalities["cf"] = VectorTable(present=present, values=factors * present[:, None])
        if catalog.popularity is None:
            catalog.popularity = np.asarray(matrix.sum(axis=0)).ravel().astype(np.float32)

    if tags is not None:
        t = reader.table(tags, "tags")
        rows = reader.rows(tags, "tags", t, row_of)
        names_ = np.asarray([_tag(tags, row, x) for row, x in enumerate(strings(t, "tag").tolist())], dtype=object)
        reader.drop("tags rows with an empty tag name (dropped)", names_ == "")
        counts = reader.counts(tags, "tags", t)
        ok = (rows >= 0) & (names_ != "") & (counts > 0) & np.isfinite(counts)
        vocab = list(dict.fromkeys(names_[ok]))
        tag_of = {x: i for i, x in enumerate(vocab)}
        cols = np.fromiter((tag_of[x] for x in names_[ok]), dtype=np.int64, count=int(ok.sum()))
        _count_repeats(reader, "tags", rows[ok] * max(len(vocab), 1) + cols)
        matrix = sp.csr_matrix((counts[ok], (rows[ok], cols)), shape=(n, len(vocab)))  # repeats summed
        try:
            embedding = tag_embedding(matrix, config)
        except ValueError as exc:
            raise CmarError(f"{tags}: {exc}; nothing to embed (lower the minimum, or give more tags)") from None
        rare = np.setdiff1d(np.arange(len(vocab)), embedding.kept)
        reader.changes["tags used by too few artists (dropped)"] += rare.size
        reader.drop("tags rows of tags used by too few artists (dropped)", np.isin(cols, rare))
        catalog.modalities["tag"] = embedding.set_table(vocab, n)

    if audio is not None:
        t = reader.table(audio, "audio")
        rows = reader.rows(audio, "audio", t, row_of)
        features = [c for c in t.column_names if c != "artist_id"]
        if not features:
            raise CmarError(f"{audio}: no feature columns besides artist_id")
        values = np.column_stack([_numbers(audio, t, c, allow_empty=False) for c in features])
        keep = rows >= 0
        if len(np.unique(rows[keep])) != int(keep.sum()):
            raise CmarError(f"{audio}: an artist has more than one row")
        if not keep.any():
            raise CmarError(f"{audio}: no row names an artist of the artists file")
        table_values = np.zeros((n, len(features)), dtype=np.float32)
        table_values[rows[keep]] = standardise(values[keep])
        present = np.zeros(n, dtype=bool)
        present[rows[keep]] = True
        catalog.modalities["audio"] = VectorTable(present=present, values=table_values)

    if tracks is not None:
        catalog.tracks = _read_tracks(reader, tracks, row_of)
        derive_audio(catalog, catalog.tracks, tracks)

    if not catalog.modalities:
        raise CmarError("give at least one of --plays, --tags, --audio, --tracks")
    reader.drop("artists left with no modality (not indexed)", np.asarray(~catalog.present().any(axis=0)))
    changes = {reason: count for reason, count in reader.changes.items() if count}
    return RawCatalog(catalog, changes)


def _unique_ids(path: Path, ids: np.ndarray, column: str) -> np.ndarray:
    """`ids` if every one is addressable (`core.names.artist_id_problem`) and none repeats; CmarError naming the row."""
    for row, value in enumerate(ids.tolist()):
        problem = artist_id_problem(value)
        if problem is not None:
            what = problem if column == "artist_id" else f"{column}: {problem.replace('artist id', 'track id')}"
            raise CmarError(f"{path}: row {row + 2}: {what}")
    if len(set(ids.tolist())) != len(ids):
        dup = next(a for a, c in Counter(ids.tolist()).items() if c > 1)
        raise CmarError(f"{path}: {column} {dup!r} is on more than one row; ids must be unique")
    return ids


def _read_tracks(reader: _Reader, path: Path, row_of: dict[str, int]) -> TrackTable:
    """The tracks file as a track table: unknown artists dropped (counted), ids checked, features standardised."""
    t = reader.table(path, "tracks")
    track_ids = _unique_ids(path, strings(t, "track_id"), "track_id")
    rows = reader.rows(path, "tracks", t, row_of)
    features = [c for c in t.column_names if c not in ("track_id", "artist_id", TRACK_TAGS_COLUMN)]
    if not features:
        raise CmarError(f"{path}: no feature columns besides track_id, artist_id and tags")
    values = np.column_stack([_numbers(path, t, c, allow_empty=False) for c in features])
    keep = rows >= 0
    if not keep.any():
        raise CmarError(f"{path}: no row names an artist of the artists file")
    tags = None
    if TRACK_TAGS_COLUMN in t.column_names:
        texts = strings(t, TRACK_TAGS_COLUMN)
        tags = [
            tuple(dict.fromkeys(_tag(path, row, x) for x in (texts[row] or "").split(";") if x.strip()))
            for row in np.flatnonzero(keep).tolist()
        ]
        many = next((i for i, x in enumerate(tags) if len(x) > MAX_TRACK_TAGS), None)
        if many is not None:
            row = int(np.flatnonzero(keep)[many]) + 2
            raise CmarError(f"{path}: row {row}: {len(tags[many])} tags; at most {MAX_TRACK_TAGS} per track")
    return TrackTable(track_ids=track_ids[keep], rows=rows[keep], vectors=standardise(values[keep]), tags=tags)


def _tag(path: Path, row: int, name: str | None) -> str:
    try:
        return normalize_tag(name or "")
    except ValueError as exc:
        raise CmarError(f"{path}: row {row + 2}: {exc}") from None


def _count_repeats(reader: _Reader, kind: str, keys: np.ndarray) -> None:
    """Count the rows whose key repeats an earlier row's (their counts are summed into one)."""
    repeats = int(keys.size - np.unique(keys).size)
    if repeats:
        reader.changes[f"{kind} rows repeating an earlier pair (counts summed)"] += repeats
