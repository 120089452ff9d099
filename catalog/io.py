"""Read, validate and write the Parquet catalogue described in the README."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from catalog.tables import Catalog, SetTable, VectorTable
from catalog.tracks import TRACKS_FILE, derive_audio, read_tracks, write_tracks
from core.errors import CmarError
from core.files import atomic_folder, sha256_file
from core.modalities import MODALITIES, ModalityKind
from core.names import MIN_TAG_WEIGHT, artist_id_problem, normalize_tag, tag_weight_problem
from core.outputs import mark_folder

log = logging.getLogger(__name__)

ARTISTS_FILE = "artists.parquet"


def modality_file(name: str) -> str:
    """File of a modality's table: `audio.parquet`, `tag.parquet`, ..."""
    return f"{name}.parquet"


def vocab_file(name: str) -> str:
    """File of a set modality's vocabulary: `tag_vocab.parquet`."""
    return f"{name}_vocab.parquet"


def catalog_fingerprint(folder: Path) -> str:
    """A short hash of every Parquet file of a catalogue folder (which catalogue an index was built from)."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.parquet")):
        digest.update(f"{path.name}:{sha256_file(path)}\n".encode())
    return digest.hexdigest()[:16]


def _read(path: Path, required: dict[str, str]) -> pa.Table:
    """Read a Parquet file and check it has the required columns."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise CmarError(f"{path}: not a readable Parquet file ({exc})") from None
    missing = [col for col in required if col not in table.column_names]
    if missing:
        expected = ", ".join(f"{c} ({t})" for c, t in required.items())
        raise CmarError(f"{path}: missing column(s) {', '.join(missing)}; expected {expected}")
    return table


def _strings(path: Path, table: pa.Table, column: str) -> np.ndarray:
    """A string column as a numpy array, refusing nulls."""
    col = table.column(column)
    if col.null_count:
        raise CmarError(f"{path}: column {column} has {col.null_count} empty value(s)")
    try:
        return np.asarray(col.cast(pa.string()).to_pylist(), dtype=object)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise CmarError(f"{path}: column {column} must hold text ({str(exc).splitlines()[0]})") from None


def _vectors(path: Path, table: pa.Table, column: str, keys: np.ndarray) -> np.ndarray:
    """A list<float> column as an (n, d) float32 array: equal lengths, finite values."""
    col = table.column(column).combine_chunks()
    if not (pa.types.is_list(col.type) or pa.types.is_fixed_size_list(col.type) or pa.types.is_large_list(col.type)):
        raise CmarError(f"{path}: column {column} must hold lists of floats, found {col.type}")
    if col.null_count:
        raise CmarError(f"{path}: column {column} has {col.null_count} empty vector(s)")
    if len(col) == 0:
        return np.zeros((0, 0), dtype=np.float32)
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    dim = int(lengths[0])
    bad = np.flatnonzero(lengths != dim)
    if dim == 0 or bad.size:
        row = int(bad[0]) if bad.size else 0
        raise CmarError(
            f"{path}: every {column} must have the same length; row {row} ({keys[row]}) has "
            f"{int(lengths[row])} values, row 0 has {dim}"
        )
    try:
        with np.errstate(over="ignore"):  # values beyond float32 become infinite, refused below with the row
            values = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.float32).reshape(len(col), dim)
    except (ValueError, TypeError, pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise CmarError(
            f"{path}: column {column} must hold lists of numbers (found nested or non-numeric values)"
        ) from None
    nonfinite = np.flatnonzero(~np.isfinite(values).all(axis=1))
    if nonfinite.size:
        row = int(nonfinite[0])
        raise CmarError(
            f"{path}: {column} of {keys[row]} (row {row}) holds NaN or infinity; {nonfinite.size} row(s) do"
        )
    return values


def _check_ids(path: Path, ids: np.ndarray) -> None:
    """Every id addressable by the API (`core.names.artist_id_problem`); CmarError naming the first that is not."""
    for row, artist_id in enumerate(ids.tolist()):
        problem = artist_id_problem(artist_id)
        if problem is not None:
            raise CmarError(f"{path}: row {row}: {problem}")


def _check_unique(path: Path, keys: np.ndarray, what: str) -> None:
    uniq, counts = np.unique(keys.astype(str), return_counts=True)
    dup = uniq[counts > 1]
    if dup.size:
        raise CmarError(f"{path}: duplicate {what} {', '.join(map(str, dup[:5]))}{' …' if dup.size > 5 else ''}")


def _rows_of(path: Path, keys: np.ndarray, index: dict[str, int]) -> np.ndarray:
    """Map artist ids to artist rows; every id must be in artists.parquet."""
    rows = np.fromiter((index.get(k, -1) for k in keys), dtype=np.int64, count=len(keys))
    unknown = np.flatnonzero(rows < 0)
    if unknown.size:
        raise CmarError(
            f"{path}: artist_id {keys[unknown[0]]!r} is not in {ARTISTS_FILE} ({unknown.size} unknown id(s))"
        )
    return rows


def read_catalog(folder: Path) -> Catalog:
    """Load and validate a catalogue folder; raise CmarError naming the file and the problem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CmarError(f"{folder}: no such catalogue folder")
    artists_path = folder / ARTISTS_FILE
    if not artists_path.is_file():
        raise CmarError(f"{folder}: {ARTISTS_FILE} is missing; is this a cmar catalogue folder?")
    artists = _read(artists_path, {"artist_id": "string", "name": "string"})
    ids = _strings(artists_path, artists, "artist_id")
    _check_ids(artists_path, ids)
    _check_unique(artists_path, ids, "artist_id")
    names = np.asarray(
        [n if n is not None else "" for n in artists.column("name").cast(pa.string()).to_pylist()], dtype=object
    )
    popularity = None
    if "popularity" in artists.column_names:
        try:
            popularity = artists.column("popularity").cast(pa.float32()).fill_null(0).to_numpy().astype(np.float32)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise CmarError(f"{artists_path}: column popularity must hold numbers") from None
        if not np.isfinite(popularity).all():
            raise CmarError(f"{artists_path}: column popularity holds NaN or infinity")
    index = {k: i for i, k in enumerate(ids)}
    n = len(ids)

    catalog = Catalog(artist_ids=ids, names=names, popularity=popularity)
    for modality in MODALITIES:
        path = folder / modality_file(modality.name)
        if not path.exists() and not path.is_symlink():
            continue
        if not path.is_file() or (path.stat().st_size == 0 and not path.is_symlink()):
            raise CmarError(f"{path}: not a regular Parquet file (a folder, a device, a pipe or empty?)")
        if modality.kind is ModalityKind.VECTOR:
            table: VectorTable | SetTable = _read_vector_table(path, index, n)
        else:
            table = _read_set_table(path, folder / vocab_file(modality.name), index, n)
        if not table.present.any():  # no artist has it: nothing to train or encode (a 0-wide table otherwise)
            log.warning("%s: no rows; the %s modality is left out", path, modality.name)
            continue
        catalog.modalities[modality.name] = table
    tracks_path = folder / TRACKS_FILE
    if tracks_path.exists() or tracks_path.is_symlink():
        if not tracks_path.is_file():
            raise CmarError(f"{tracks_path}: not a regular Parquet file")
        catalog.tracks = read_tracks(tracks_path, index)
        derive_audio(catalog, catalog.tracks, tracks_path)
    if not catalog.modalities:
        expected = ", ".join([*(modality_file(m.name) for m in MODALITIES), TRACKS_FILE])
        raise CmarError(f"{folder}: no modality table found; expected at least one of {expected}")
    return catalog


def _read_vector_table(path: Path, index: dict[str, int], n: int) -> VectorTable:
    table = _read(path, {"artist_id": "string", "vector": "list<float>"})
    keys = _strings(path, table, "artist_id")
    _check_unique(path, keys, "artist_id")
    rows = _rows_of(path, keys, index)
    vectors = _vectors(path, table, "vector", keys)
    values = np.zeros((n, vectors.shape[1]), dtype=np.float32)
    values[rows] = vectors
    present = np.zeros(n, dtype=bool)
    present[rows] = True
    return VectorTable(present=present, values=values)


def _read_set_table(path: Path, vocab_path: Path, index: dict[str, int], n: int) -> SetTable:
    if not vocab_path.is_file():
        raise CmarError(f"{vocab_path}: missing; {path.name} needs its vocabulary (columns tag, vector)")
    vocab_table = _read(vocab_path, {"tag": "string", "vector": "list<float>"})
    vocab = _tag_names(vocab_path, _strings(vocab_path, vocab_table, "tag"))
    _check_unique(vocab_path, vocab, "tag (after normalising names: core.names.normalize_tag)")
    vocab_vectors = _vectors(vocab_path, vocab_table, "vector", vocab)
    vocab_index = {t: i for i, t in enumerate(vocab)}

    table = _read(path, {"artist_id": "string", "tag": "string", "weight": "float"})
    keys = _strings(path, table, "artist_id")
    rows = _rows_of(path, keys, index)
    tags = _tag_names(path, _strings(path, table, "tag"))
    items = np.fromiter((vocab_index.get(t, -1) for t in tags), dtype=np.int64, count=len(tags))
    unknown = np.flatnonzero(items < 0)
    if unknown.size:
        raise CmarError(
            f"{path}: tag {tags[unknown[0]]!r} (artist {keys[unknown[0]]}) is not in {vocab_path.name}; "
            f"{unknown.size} row(s) name unknown tags"
        )
    if table.column("weight").null_count:
        raise CmarError(f"{path}: column weight has {table.column('weight').null_count} empty value(s)")
    try:
        weights = table.column("weight").cast(pa.float32()).to_numpy().astype(np.float32)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise CmarError(f"{path}: column weight must hold numbers") from None
    if not np.isfinite(weights).all():
        raise CmarError(f"{path}: column weight holds NaN or infinity")
    bad = np.flatnonzero(weights < MIN_TAG_WEIGHT)
    if bad.size:
        row = int(bad[0])
        raise CmarError(f"{path}: row {row} ({keys[row]}, {tags[row]!r}): {tag_weight_problem(float(weights[row]))}")
    pairs = rows * len(vocab) + items
    if np.unique(pairs).size != pairs.size:
        raise CmarError(f"{path}: an artist lists the same tag twice; merge their weights into one row")
    return SetTable.from_rows(list(vocab), vocab_vectors, n, rows, items, weights)


def _tag_names(path: Path, names: np.ndarray) -> np.ndarray:
    """Tag names in their canonical form (`core.names.normalize_tag`); CmarError for one that has none."""
    out = np.empty(len(names), dtype=object)
    for row, name in enumerate(names.tolist()):
        try:
            out[row] = normalize_tag(name)
        except ValueError as exc:
            raise CmarError(f"{path}: row {row}: {exc}") from None
        if not out[row]:
            raise CmarError(f"{path}: row {row}: tag name {name!r} is empty")
    return out


def _vector_column(values: np.ndarray) -> pa.Array:
    flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).ravel())
    return pa.FixedSizeListArray.from_arrays(flat, values.shape[1])


def write_catalog(
    folder: Path,
    catalog: Catalog,
    extra_artist_columns: dict[str, np.ndarray] | None = None,
    overwrite: bool = False,
    changes: dict[str, int] | None = None,
    source: dict[str, object] | None = None,
) -> None:
    """Write a catalogue folder atomically, one Parquet file per table, and its manifest.

    `extra_artist_columns` are added to artists.parquet (readers ignore columns they do not know).
    `changes` (rows dropped or merged while reading the sources, by reason) go into the
    manifest. `folder` may replace only an earlier catalogue folder unless `overwrite`
    (`core.outputs`). Raises CmarError for a catalogue with no artist.
    """
    if catalog.n_artists == 0:
        raise CmarError(f"{folder}: the catalogue has no artist; nothing written")
    with atomic_folder(Path(folder), "catalog", overwrite) as tmp:
        mark_folder(
            tmp,
            "catalog",
            n_artists=catalog.n_artists,
            modalities={n: int(t.present.sum()) for n, t in catalog.modalities.items()},
            changes=changes or {},
            source=source or {},
        )
        columns: dict[str, pa.Array] = {
            "artist_id": pa.array(catalog.artist_ids.astype(str).tolist(), pa.string()),
            "name": pa.array(catalog.names.astype(str).tolist(), pa.string()),
        }
        if catalog.popularity is not None:
            columns["popularity"] = pa.array(catalog.popularity, pa.float32())
        for key, values in (extra_artist_columns or {}).items():
            columns[key] = pa.array(np.asarray(values).tolist())
        pq.write_table(pa.table(columns), tmp / ARTISTS_FILE)
        for name, table in catalog.modalities.items():
            if isinstance(table, VectorTable):
                rows = np.flatnonzero(table.present)
                pq.write_table(
                    pa.table(
                        {
                            "artist_id": pa.array(catalog.artist_ids[rows].astype(str).tolist(), pa.string()),
                            "vector": _vector_column(table.values[rows]),
                        }
                    ),
                    tmp / modality_file(name),
                )
            else:
                owners = np.repeat(np.arange(catalog.n_artists), np.diff(table.indptr))
                pq.write_table(
                    pa.table(
                        {
                            "artist_id": pa.array(catalog.artist_ids[owners].astype(str).tolist(), pa.string()),
                            "tag": pa.array([table.vocab[i] for i in table.items], pa.string()),
                            "weight": pa.array(table.weights, pa.float32()),
                        }
                    ),
                    tmp / modality_file(name),
                )
                pq.write_table(
                    pa.table(
                        {"tag": pa.array(table.vocab, pa.string()), "vector": _vector_column(table.vocab_vectors)}
                    ),
                    tmp / vocab_file(name),
                )
        if catalog.tracks is not None:
            write_tracks(tmp / TRACKS_FILE, catalog.tracks, catalog.artist_ids)
