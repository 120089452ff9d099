"""The OLGA benchmark adapter: a catalogue and ground truth from a folder in the format of shared/data/olga.

Works on any folder in that format, whatever artists it holds. Last.fm artists are joined to
OLGA artists through `lastfm_artists.csv` (several Last.fm ids of one artist are merged);
Last.fm artists that join no OLGA artist still take part in the factorisations, which only
improves the vectors of those that do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from catalog.csvfiles import lookup, read_csv, strings
from catalog.featurize import FeaturizeConfig, als_item_factors, standardise, tag_embedding
from catalog.io import write_catalog
from catalog.tables import Catalog, VectorTable
from core.errors import CmarError
from core.names import normalize_tag
from core.outputs import claim_output

log = logging.getLogger(__name__)

FILES = {
    "artists.csv": ("mbid", "name"),
    "similar.csv": ("mbid_a", "mbid_b"),
    "lastfm_artists.csv": ("lastfm_artist_id", "mbid"),
    "lastfm_plays.csv": ("user_id", "lastfm_artist_id", "plays"),
    "lastfm_tags.csv": ("user_id", "lastfm_artist_id", "tag"),
    "musicbrainz_tags.csv": ("mbid", "tag", "count"),
    "echonest_audio.csv": ("mbid",),
}


@dataclass
class OlgaData:
    """An OLGA catalogue, its ground truth and what the adapter saw."""

    catalog: Catalog
    plays: np.ndarray  # (N,) total Last.fm plays of each artist (0 without listening data)
    edges: np.ndarray  # (E, 2) undirected ground-truth edges between artist rows
    split: np.ndarray  # (N,) the official OLGA split of each artist
    tag_artist_vectors: np.ndarray  # (N, d) each artist's PPMI-SVD vector (the raw tag baseline)
    coverage: dict[str, Any] = field(default_factory=dict)


def _read_csv(folder: Path, name: str) -> pa.Table:
    return read_csv(folder / name, FILES[name], f"missing; expected an OLGA folder with {', '.join(FILES)}")


def read_olga(folder: Path, config: FeaturizeConfig | None = None) -> OlgaData:
    """Featurize an OLGA folder into a catalogue (audio, cf, tag) and ground-truth edges."""
    config = config or FeaturizeConfig()
    folder = Path(folder)
    if not folder.is_dir():
        raise CmarError(f"{folder}: no such folder")
    artists = _read_csv(folder, "artists.csv")
    mbids = strings(artists, "mbid")
    if any(m is None for m in mbids):
        raise CmarError(f"{folder / 'artists.csv'}: empty mbid")
    row_of = {m: i for i, m in enumerate(mbids)}
    if len(row_of) != len(mbids):
        raise CmarError(f"{folder / 'artists.csv'}: duplicate mbid")
    n = len(mbids)
    names = np.asarray([x or "" for x in strings(artists, "name")], dtype=object)
    split = (
        np.asarray([x or "" for x in strings(artists, "split")], dtype=object)
        if "split" in artists.column_names
        else np.full(n, "", dtype=object)
    )

    # Items of the factorisations: OLGA artists first (rows 0..n-1), then unjoined Last.fm artists.
    lastfm = _read_csv(folder, "lastfm_artists.csv")
    lfm_ids = strings(lastfm, "lastfm_artist_id")
    lfm_rows = lookup(strings(lastfm, "mbid"), row_of)
    item_of: dict[Any, int] = {}
    extra = 0
    for lid, row in zip(lfm_ids, lfm_rows, strict=True):
        if row >= 0:
            item_of[lid] = int(row)
        else:
            item_of[lid] = n + extra
            extra += 1
    n_items = n + extra

    plays_table = _read_csv(folder, "lastfm_plays.csv")
    users = strings(plays_table, "user_id")
    items = lookup(strings(plays_table, "lastfm_artist_id"), item_of)
    counts = np.asarray(plays_table.column("plays").to_pylist(), dtype=np.float64)
    ok = (items >= 0) & np.isfinite(counts) & (counts > 0)
    user_index = {u: i for i, u in enumerate(dict.fromkeys(users[ok]))}
    interactions = sp.csr_matrix(
        (counts[ok], (lookup(users[ok], user_index), items[ok])), shape=(len(user_index), n_items)
    )  # duplicates (merged Last.fm ids) are summed
    cf_present = np.asarray((interactions[:, :n] > 0).sum(axis=0)).ravel() > 0
    plays = np.asarray(interactions[:, :n].sum(axis=0)).ravel()
    cf = als_item_factors(interactions, config)[:n]

    tag_counts, vocab = _tag_counts(folder, item_of, row_of, n_items)
    tags = tag_embedding(tag_counts, config)

    audio_table = _read_csv(folder, "echonest_audio.csv")
    audio_rows = lookup(strings(audio_table, "mbid"), row_of)
    feature_cols = [c for c in audio_table.column_names if c != "mbid"]
    audio_values = np.column_stack(
        [np.asarray(audio_table.column(c).to_pylist(), dtype=np.float64) for c in feature_cols]
    )
    keep = (audio_rows >= 0) & np.isfinite(audio_values).all(axis=1)
    audio = np.zeros((n, len(feature_cols)), dtype=np.float32)
    audio[audio_rows[keep]] = standardise(audio_values[keep])
    audio_present = np.zeros(n, dtype=bool)
    audio_present[audio_rows[keep]] = True

    similar = _read_csv(folder, "similar.csv")
    a, b = lookup(strings(similar, "mbid_a"), row_of), lookup(strings(similar, "mbid_b"), row_of)
    edges = np.unique(np.sort(np.column_stack([a, b])[(a >= 0) & (b >= 0) & (a != b)], axis=1), axis=0)

    catalog = Catalog(
        artist_ids=mbids,
        names=names,
        popularity=plays.astype(np.float32),
        modalities={
            "audio": VectorTable(present=audio_present, values=audio),
            "cf": VectorTable(present=cf_present, values=cf * cf_present[:, None]),
            "tag": tags.set_table(vocab, n),
        },
    )
    present = catalog.present()
    coverage = {
        "artists": n,
        "with_any_modality": int(present.any(axis=0).sum()),
        **{f"with_{name}": int(t.present.sum()) for name, t in catalog.modalities.items()},
        "with_all_three": int(present.all(axis=0).sum()),
        "edges": len(edges),
        "lastfm_users": len(user_index),
        "lastfm_artists_unjoined": extra,
        "tags_kept": len(tags.kept),
    }
    log.info("OLGA: %s", ", ".join(f"{k} {v}" for k, v in coverage.items()))
    return OlgaData(
        catalog=catalog,
        plays=plays,
        edges=edges,
        split=split,
        tag_artist_vectors=tags.artist_vectors[:n],
        coverage=coverage,
    )


def _tag_counts(
    folder: Path, item_of: dict[Any, int], row_of: dict[Any, int], n_items: int
) -> tuple[sp.csr_matrix, list[str]]:
    """Items x tags counts: Last.fm (users who applied the tag) plus MusicBrainz (votes)."""
    lastfm_tags = _read_csv(folder, "lastfm_tags.csv")
    mb_tags = _read_csv(folder, "musicbrainz_tags.csv")
    lfm_items = lookup(strings(lastfm_tags, "lastfm_artist_id"), item_of)
    mb_items = lookup(strings(mb_tags, "mbid"), row_of)
    lfm_names = strings(lastfm_tags, "tag")
    mb_names = strings(mb_tags, "tag")
    mb_votes = np.asarray(mb_tags.column("count").to_pylist(), dtype=np.float64)
    item_ids = np.concatenate([lfm_items, mb_items])
    tag_names = np.concatenate([lfm_names, mb_names])
    weights = np.concatenate([np.ones(len(lfm_items)), np.nan_to_num(mb_votes, nan=1.0)])
    clean = np.asarray([_canonical(t) for t in tag_names], dtype=object)  # "1st  vine" is "1st vine"
    ok = (item_ids >= 0) & (clean != "") & (weights > 0)
    vocab = list(dict.fromkeys(clean[ok]))
    tag_index = {t: i for i, t in enumerate(vocab)}
    matrix = sp.csr_matrix((weights[ok], (item_ids[ok], lookup(clean[ok], tag_index))), shape=(n_items, len(vocab)))
    return matrix, vocab


def _canonical(name: str | None) -> str:
    """A tag name in the one canonical form (`core.names.normalize_tag`); "" for none or one that has no form."""
    try:
        return normalize_tag(name) if name is not None else ""
    except ValueError:  # a lone surrogate: not a name any door accepts
        return ""


def write_olga_catalog(
    folder: Path, out_dir: Path, config: FeaturizeConfig | None = None, overwrite: bool = False
) -> OlgaData:
    """Featurize an OLGA folder and write the catalogue (with each artist's split and plays) to `out_dir`."""
    claim_output(out_dir, "catalog", overwrite)
    data = read_olga(folder, config)
    write_catalog(
        out_dir, data.catalog, extra_artist_columns={"split": data.split, "plays": data.plays}, overwrite=overwrite
    )
    return data
