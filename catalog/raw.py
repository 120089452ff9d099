"""A catalogue from a team's own raw files: listening counts, tag counts and audio features (CSV)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from catalog.csvfiles import lookup, read_csv, strings
from catalog.featurize import FeaturizeConfig, als_item_factors, standardise, tag_embedding
from catalog.tables import Catalog, VectorTable
from core.errors import CmarError

log = logging.getLogger(__name__)

COLUMNS = {
    "artists": ("artist_id", "name"),
    "plays": ("user_id", "artist_id", "count"),
    "tags": ("artist_id", "tag", "count"),
    "audio": ("artist_id",),
}


def _read(path: Path, kind: str) -> pa.Table:
    return read_csv(path, COLUMNS[kind])


def _numbers(path: Path, table: pa.Table, column: str) -> np.ndarray:
    try:
        values = np.asarray(table.column(column).cast(pa.float64()).to_pylist(), dtype=np.float64)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise CmarError(f"{path}: column {column} must hold numbers") from None
    return np.nan_to_num(values, nan=0.0)


def _rows(path: Path, ids: np.ndarray, row_of: dict[str, int]) -> np.ndarray:
    rows = lookup(ids, row_of)
    unknown = int((rows < 0).sum())
    if unknown:
        log.warning("%s: %d row(s) name artists missing from the artists file; ignored", path, unknown)
    return rows


def read_raw(
    artists: Path,
    plays: Path | None = None,
    tags: Path | None = None,
    audio: Path | None = None,
    config: FeaturizeConfig | None = None,
) -> Catalog:
    """Featurize raw files into a catalogue: CF by ALS of the plays, tag vectors by PPMI + SVD, standardised audio."""
    config = config or FeaturizeConfig()
    table = _read(artists, "artists")
    ids = strings(table, "artist_id")
    if any(a is None for a in ids) or len(set(ids)) != len(ids):
        raise CmarError(f"{artists}: artist_id must be present and unique on every row")
    names = np.asarray([n or "" for n in strings(table, "name")], dtype=object)
    row_of = {a: i for i, a in enumerate(ids)}
    n = len(ids)
    popularity = (
        _numbers(artists, table, "popularity").astype(np.float32) if "popularity" in table.column_names else None
    )
    catalog = Catalog(artist_ids=ids, names=names, popularity=popularity)

    if plays is not None:
        t = _read(plays, "plays")
        rows = _rows(plays, strings(t, "artist_id"), row_of)
        counts = _numbers(plays, t, "count")
        users = strings(t, "user_id")
        ok = (rows >= 0) & (counts > 0)
        user_of = {u: i for i, u in enumerate(dict.fromkeys(users[ok]))}
        user_rows = np.fromiter((user_of[u] for u in users[ok]), dtype=np.int64, count=int(ok.sum()))
        matrix = sp.csr_matrix((counts[ok], (user_rows, rows[ok])), shape=(len(user_of), n))
        present = np.asarray((matrix > 0).sum(axis=0)).ravel() > 0
        factors = als_item_factors(matrix, config)
        catalog.modalities["cf"] = VectorTable(present=present, values=factors * present[:, None])
        if catalog.popularity is None:
            catalog.popularity = np.asarray(matrix.sum(axis=0)).ravel().astype(np.float32)

    if tags is not None:
        t = _read(tags, "tags")
        rows = _rows(tags, strings(t, "artist_id"), row_of)
        names_ = np.asarray([str(x).strip().lower() if x is not None else "" for x in strings(t, "tag")], dtype=object)
        counts = _numbers(tags, t, "count")
        ok = (rows >= 0) & (names_ != "") & (counts > 0)
        vocab = list(dict.fromkeys(names_[ok]))
        tag_of = {x: i for i, x in enumerate(vocab)}
        cols = np.fromiter((tag_of[x] for x in names_[ok]), dtype=np.int64, count=int(ok.sum()))
        embedding = tag_embedding(sp.csr_matrix((counts[ok], (rows[ok], cols)), shape=(n, len(vocab))), config)
        catalog.modalities["tag"] = embedding.set_table(vocab, n)

    if audio is not None:
        t = _read(audio, "audio")
        rows = _rows(audio, strings(t, "artist_id"), row_of)
        features = [c for c in t.column_names if c != "artist_id"]
        if not features:
            raise CmarError(f"{audio}: no feature columns besides artist_id")
        values = np.column_stack([_numbers(audio, t, c) for c in features])
        keep = rows >= 0
        if len(np.unique(rows[keep])) != int(keep.sum()):
            raise CmarError(f"{audio}: an artist has more than one row")
        table_values = np.zeros((n, len(features)), dtype=np.float32)
        table_values[rows[keep]] = standardise(values[keep])
        present = np.zeros(n, dtype=bool)
        present[rows[keep]] = True
        catalog.modalities["audio"] = VectorTable(present=present, values=table_values)

    if not catalog.modalities:
        raise CmarError("give at least one of --plays, --tags, --audio")
    return catalog
