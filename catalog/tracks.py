"""Tracks in the catalogue: an optional `tracks.parquet`, one audio vector per track.

Columns: `track_id` (string, unique), `artist_id` (string, in artists.parquet), `vector`
(list<float>, the same length for every track) and optionally `tags` (list<string>). The
track encoder (`model_export.tracks`, Royo-Letelier et al. 2018) learns from them, and `cmar
disambiguate` clusters each artist's tracks.

An artist with tracks but no artist-level audio gets the mean of its tracks' vectors as its
audio input (`derive_audio`): the units stay those of the track features, like an artist-level
descriptor mean, and the audio encoder standardises its input in any case.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from catalog.tables import Catalog, TrackTable, VectorTable
from core.errors import CmarError
from core.names import artist_id_problem, normalize_tag

TRACKS_FILE = "tracks.parquet"
MAX_TRACK_TAGS = 64  # tags kept per track (a track's genres, instruments, moods)


def derive_audio(catalog: Catalog, tracks: TrackTable, source: Path) -> None:
    """Give every artist with tracks but no audio the mean of its tracks' vectors as its audio input.

    Creates the audio table when the catalogue has none. Raises CmarError when an artist needs
    its audio derived but the catalogue's audio has another dimension than the tracks (the two
    cannot describe the same thing).
    """
    audio = catalog.modalities.get("audio")
    if audio is not None and not isinstance(audio, VectorTable):
        raise CmarError("the audio modality must be a vector table")
    counts = np.bincount(tracks.rows, minlength=catalog.n_artists)
    derive = (counts > 0) & (~audio.present if audio is not None else True)
    if not derive.any():
        return  # every artist with tracks has its own audio: nothing to derive, whatever the widths
    if audio is not None and audio.dim != tracks.dim:
        raise CmarError(
            f"{source}: tracks have {tracks.dim} audio values but the catalogue's audio has {audio.dim}; "
            "artist audio can be derived from tracks only in the same features"
        )
    if audio is None:
        audio = VectorTable(
            present=np.zeros(catalog.n_artists, dtype=bool),
            values=np.zeros((catalog.n_artists, tracks.dim), dtype=np.float32),
        )
    sums = np.zeros((catalog.n_artists, tracks.dim), dtype=np.float64)
    np.add.at(sums, tracks.rows, tracks.vectors)
    audio.values[derive] = (sums[derive] / counts[derive, None]).astype(np.float32)
    audio.present = audio.present | derive
    catalog.modalities["audio"] = audio


def read_tracks(path: Path, artist_index: dict[str, int]) -> TrackTable:
    """Read and validate `tracks.parquet` against the catalogue's artists; CmarError naming the problem."""
    from catalog.io import _read, _rows_of, _strings, _vectors  # io imports this module

    table = _read(path, {"track_id": "string", "artist_id": "string", "vector": "list<float>"})
    track_ids = _strings(path, table, "track_id")
    for row, track_id in enumerate(track_ids.tolist()):
        problem = artist_id_problem(track_id)  # the same rules: addressable in a URL and a report
        if problem is not None:
            raise CmarError(f"{path}: row {row}: track_id: {problem.replace('artist id', 'track id')}")
    uniq, counts = np.unique(track_ids.astype(str), return_counts=True)
    if (counts > 1).any():
        raise CmarError(f"{path}: duplicate track_id {str(uniq[counts > 1][0])!r}; track ids must be unique")
    if len(track_ids) == 0:
        raise CmarError(f"{path}: no track rows")
    rows = _rows_of(path, _strings(path, table, "artist_id"), artist_index)
    vectors = _vectors(path, table, "vector", track_ids)
    tags = _tags(path, table) if "tags" in table.column_names else None
    return TrackTable(track_ids=track_ids, rows=rows, vectors=vectors, tags=tags)


def _tags(path: Path, table: pa.Table) -> list[tuple[str, ...]]:
    col = table.column("tags").combine_chunks()
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)) or not (
        pa.types.is_string(col.type.value_type) or pa.types.is_large_string(col.type.value_type)
    ):
        raise CmarError(f"{path}: column tags must hold lists of strings, found {col.type}")
    out = []
    for row, values in enumerate(col.to_pylist()):
        try:
            kept = tuple(dict.fromkeys(normalize_tag(v) for v in (values or []) if v and v.strip()))
        except ValueError as exc:
            raise CmarError(f"{path}: row {row}: {exc}") from None
        if len(kept) > MAX_TRACK_TAGS:
            raise CmarError(f"{path}: row {row}: {len(kept)} tags; at most {MAX_TRACK_TAGS} per track")
        out.append(kept)
    return out


def write_tracks(path: Path, tracks: TrackTable, artist_ids: npt.NDArray[np.str_]) -> None:
    """Write a track table as `tracks.parquet` (the reverse of `read_tracks`)."""
    flat = pa.array(np.ascontiguousarray(tracks.vectors, dtype=np.float32).ravel())
    columns: dict[str, pa.Array] = {
        "track_id": pa.array(tracks.track_ids.astype(str).tolist(), pa.string()),
        "artist_id": pa.array(artist_ids[tracks.rows].astype(str).tolist(), pa.string()),
        "vector": pa.FixedSizeListArray.from_arrays(flat, tracks.dim),
    }
    if tracks.tags is not None:
        columns["tags"] = pa.array([list(t) for t in tracks.tags], pa.list_(pa.string()))
    pq.write_table(pa.table(columns), path)
