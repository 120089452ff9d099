"""Synthetic tracks with known artists: each artist a point, its tracks noisy views of it; tags = the artist's genre."""

from pathlib import Path

import numpy as np

from catalog.io import write_catalog
from catalog.tables import Catalog, TrackTable


def synthetic_tracks(
    n_artists: int = 40, tracks: int = 6, dim: int = 12, noise: float = 0.35, n_genres: int = 4, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, ...]]]:
    """(audio (T, dim), artist labels (T,), tags (T,)): artists of one genre lie near each other."""
    rng = np.random.default_rng(seed)
    genres = rng.integers(0, n_genres, n_artists)
    genre_centres = rng.normal(0, 1.0, (n_genres, dim))
    centres = genre_centres[genres] + rng.normal(0, 0.6, (n_artists, dim))
    labels = np.repeat(np.arange(n_artists), tracks)
    mix = rng.normal(0, 1 / np.sqrt(dim), (dim, dim))
    audio = (np.tanh(centres[labels] + rng.normal(0, noise, (len(labels), dim))) @ mix) * 3 + 10  # not centred
    tags = [(f"genre{genres[a]}",) for a in labels]
    return audio.astype(np.float32), labels, tags


def track_catalog(folder: Path, **kwargs: object) -> Path:
    """A catalogue whose artists are known only through their tracks (see `synthetic_tracks`)."""
    audio, labels, tags = synthetic_tracks(**kwargs)  # type: ignore[arg-type]
    n = int(labels.max()) + 1
    catalog = Catalog(
        artist_ids=np.array([f"a{i}" for i in range(n)], dtype=object),
        names=np.array([f"Artist {i}" for i in range(n)], dtype=object),
        popularity=None,
    )
    catalog.tracks = TrackTable(
        track_ids=np.array([f"t{i}" for i in range(len(labels))], dtype=object), rows=labels, vectors=audio, tags=tags
    )
    write_catalog(folder, catalog)
    return folder
