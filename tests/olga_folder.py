"""A tiny folder in the format of shared/data/olga, with known contents."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

N_ARTISTS = 42
N_GROUPS = 3  # artists i and j are similar when i % 3 == j % 3 (and close in index)


def mbid(i: int) -> str:
    """A fake MusicBrainz id."""
    return f"00000000-0000-0000-0000-{i:012d}"


def _write(path: Path, header: list[str], rows: list[list[object]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def make_olga_folder(folder: Path, seed: int = 0) -> Path:
    """Write the seven CSV files; return the folder.

    Artists 0..41. Last.fm: artists 0..29 are joined (artist 5 twice, as ids 105 and 205),
    and 10 Last.fm artists (ids 900..909) join nobody. Audio for artists 0..19. Tags for all,
    from Last.fm for 0..29 and MusicBrainz for 20..41.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    _write(
        folder / "artists.csv",
        ["mbid", "name", "allmusic_id", "split"],
        [[mbid(i), f"Artist {i}", f"mn{i:010d}", "train" if i % 5 else "val"] for i in range(N_ARTISTS)],
    )
    edges = [
        [mbid(i), mbid(j)]
        for i in range(N_ARTISTS)
        for j in range(i + 1, N_ARTISTS)
        if i % N_GROUPS == j % N_GROUPS and j - i <= 12
    ]
    _write(folder / "similar.csv", ["mbid_a", "mbid_b"], edges)
    lastfm = [[100 + i, f"Artist {i}", mbid(i)] for i in range(30)] + [[205, "Artist 5 (again)", mbid(5)]]
    lastfm += [[900 + j, f"Stranger {j}", ""] for j in range(10)]
    _write(folder / "lastfm_artists.csv", ["lastfm_artist_id", "name", "mbid"], lastfm)
    plays = []
    for user in range(60):
        group = user % N_GROUPS
        for i in range(30):
            if i % N_GROUPS == group and rng.random() < 0.6:
                plays.append([user, 205 if (i == 5 and user % 2) else 100 + i, int(rng.integers(1, 500))])
        plays.append([user, 900 + user % 10, int(rng.integers(1, 50))])
    _write(folder / "lastfm_plays.csv", ["user_id", "lastfm_artist_id", "plays"], plays)
    lastfm_tags = [[u, 100 + i, f"Genre{i % N_GROUPS}"] for i in range(30) for u in range(3)]
    lastfm_tags += [[1, 100 + i, "seen live"] for i in range(0, 30, 2)]
    lastfm_tags += [[1, 77777, "unjoinable"]]  # a Last.fm id that lastfm_artists.csv lacks
    # One tag in three spellings (double space, case, full-width letters), as in the real files: one vocabulary entry.
    lastfm_tags += [[2, 100 + i, name] for i in range(6) for name in ("1st vine", "1st  vine", "1ST \uff36INE")]
    _write(folder / "lastfm_tags.csv", ["user_id", "lastfm_artist_id", "tag"], lastfm_tags)
    mb = [[mbid(i), f"genre{i % N_GROUPS}", 2] for i in range(20, N_ARTISTS)]
    mb += [[mbid(i), f"style{i % N_GROUPS}", 1] for i in range(20, N_ARTISTS)]
    _write(folder / "musicbrainz_tags.csv", ["mbid", "tag", "count"], mb)
    audio_cols = [f"f{j}" for j in range(6)]
    audio = [[mbid(i), *(rng.normal(i % N_GROUPS, 1.0, 6).round(4).tolist())] for i in range(20)]
    _write(folder / "echonest_audio.csv", ["mbid", *audio_cols], audio)
    return folder
