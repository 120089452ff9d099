"""Track-level data sets for the disambiguation experiments, read by path from their own format.

- Jamendo (`tracks.csv` + `spaces/*.npy`, as `shared/data/jamendo`): a track's audio is the
  concatenation of its rows in every content space, in file-name order (28 x 56 values).
- Million Song Subset (`songs.csv`, as `shared/data/msd_songs`): the 12 timbre and 12 chroma
  means, loudness, tempo, mode, duration and the key as (sin, cos) of its angle (30 values).
- A cmar catalogue with `tracks.parquet`.
Tags (side information) are the genres; albums are known for Jamendo only.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from catalog.csvfiles import read_csv, strings
from core.errors import CmarError
from core.names import normalize_tag

log = logging.getLogger(__name__)

MSD_FEATURES = (
    [f"pitch_{i}_mean" for i in range(12)]
    + [f"timbre_{i}_mean" for i in range(12)]
    + ["loudness", "tempo", "mode", "duration"]
)


@dataclass
class TrackSet:
    """Tracks with their artists: the input of `evaluation.disambiguation`."""

    name: str  # which format it was read from: jamendo, msd_songs or catalog
    track_ids: npt.NDArray[np.object_]  # (T,)
    artists: npt.NDArray[np.object_]  # (T,) artist id of each track
    albums: npt.NDArray[np.object_] | None  # (T,) album id of each track, when known
    audio: npt.NDArray[np.float32]  # (T, d)
    tags: list[tuple[str, ...]]  # (T,) genres
    features: str  # what the audio values are

    def artist_labels(self) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.int64]]:
        """(artist ids (A,), label of each track (T,))."""
        ids, labels = np.unique(self.artists.astype(str), return_inverse=True)
        return ids.astype(object), labels.astype(np.int64)


def load_track_set(folder: Path) -> TrackSet:
    """Read a folder in one of the known formats; CmarError naming what was expected if none matches."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CmarError(f"{folder}: no such folder")
    if (folder / "tracks.csv").is_file() and (folder / "spaces").is_dir():
        return _jamendo(folder)
    if (folder / "songs.csv").is_file():
        return _msd(folder)
    if (folder / "tracks.parquet").is_file():
        return _catalog(folder)
    raise CmarError(
        f"{folder}: not a track data set; expected tracks.csv + spaces/ (Jamendo), songs.csv (Million Song "
        "Subset) or a cmar catalogue with tracks.parquet"
    )


def _tags(texts: npt.NDArray[np.object_]) -> list[tuple[str, ...]]:
    return [tuple(normalize_tag(t) for t in (text or "").split(";") if t.strip()) for text in texts.tolist()]


def _jamendo(folder: Path) -> TrackSet:
    table = read_csv(folder / "tracks.csv", ("track_id", "artist_id", "album_id", "genres"), as_strings=True)
    n = table.num_rows
    spaces = sorted((folder / "spaces").glob("*.npy"))
    if not spaces:
        raise CmarError(f"{folder / 'spaces'}: no .npy space")
    parts = []
    for path in spaces:
        try:
            values = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CmarError(f"{path}: not a readable .npy array ({exc})") from None
        if values.ndim != 2 or values.shape[0] != n:
            raise CmarError(f"{path}: expected ({n}, d), one row per track of tracks.csv, got {values.shape}")
        with np.errstate(over="ignore"):
            values = values.astype(np.float32)
        bad = int((~np.isfinite(values)).sum())
        if bad:
            log.warning("%s: %d NaN or infinite values read as 0", path, bad)
        parts.append(np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0))
    return TrackSet(
        name="jamendo",
        track_ids=strings(table, "track_id"),
        artists=strings(table, "artist_id"),
        albums=strings(table, "album_id"),
        audio=np.concatenate(parts, axis=1),
        tags=_tags(strings(table, "genres")),
        features=f"{len(spaces)} content spaces concatenated ({sum(p.shape[1] for p in parts)} values)",
    )


def _msd(folder: Path) -> TrackSet:
    path = folder / "songs.csv"
    table = read_csv(path, ("song_id", "artist_mbid", "genre", "key", *MSD_FEATURES), as_strings=True)

    def numbers(column: str) -> npt.NDArray[np.float64]:
        out = np.full(table.num_rows, np.nan)
        for row, text in enumerate(strings(table, column).tolist()):
            with contextlib.suppress(ValueError):  # not a number: NaN, and the song is left out
                out[row] = float(text) if text else np.nan
        return out

    key = numbers("key")
    columns = [numbers(c) for c in MSD_FEATURES] + [np.sin(2 * np.pi * key / 12), np.cos(2 * np.pi * key / 12)]
    with np.errstate(over="ignore"):  # beyond float32: infinite, and the song is left out below
        audio = np.column_stack(columns).astype(np.float32)
    artists = strings(table, "artist_mbid")
    ok = np.isfinite(audio).all(axis=1) & np.asarray([bool(a) for a in artists])
    if not ok.all():
        log.info("%s: %d songs without every descriptor or an artist left out", path, int((~ok).sum()))
    return TrackSet(
        name="msd_songs",
        track_ids=strings(table, "song_id")[ok],
        artists=artists[ok],
        albums=None,
        audio=audio[ok],
        tags=[t for t, keep in zip(_tags(strings(table, "genre")), ok, strict=True) if keep],
        features="Echo Nest timbre and chroma means, loudness, tempo, mode, duration, key as sin/cos (30 values)",
    )


def _catalog(folder: Path) -> TrackSet:
    from catalog.io import read_catalog

    catalog = read_catalog(folder)
    tracks = catalog.tracks
    assert tracks is not None
    return TrackSet(
        name="catalog",
        track_ids=tracks.track_ids,
        artists=catalog.artist_ids[tracks.rows].astype(object),
        albums=None,
        audio=tracks.vectors,
        tags=tracks.tags or [() for _ in range(len(tracks))],
        features=f"the catalogue's track vectors ({tracks.dim} values)",
    )
