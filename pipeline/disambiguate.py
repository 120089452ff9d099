"""`cmar disambiguate`: artists whose tracks split into several clusters (suspected homonyms or mis-filed tracks).

Every artist with enough tracks has them embedded by a track model (`inference.tracks`) and
clustered by Ward linkage at the model's threshold (Royo-Letelier et al. 2018, Section 3.3);
an artist whose tracks form two or more clusters is listed with the clusters' track ids and a
confidence (`inference.tracks.Clustering.confidence`), most confident first.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from catalog.io import read_catalog
from core.errors import CmarError
from inference.tracks import TrackModel, ward_clusters

log = logging.getLogger(__name__)

DEFAULT_MIN_TRACKS = 4  # fewer tracks than this say too little to split an artist
EMBED_BATCH = 4096


def disambiguate(
    catalog_dir: Path, model_dir: Path, min_tracks: int = DEFAULT_MIN_TRACKS, progress: bool = True
) -> dict[str, Any]:
    """The suspected artists of a catalogue as a JSON-ready report.

    Raises CmarError when the catalogue has no tracks, or its track vectors are not the
    model's input width.
    """
    if min_tracks < 2:
        raise CmarError(f"--min-tracks: expected 2 or more, got {min_tracks}")
    catalog = read_catalog(catalog_dir)
    tracks = catalog.tracks
    if tracks is None:
        raise CmarError(f"{catalog_dir}: the catalogue has no tracks.parquet; nothing to disambiguate")
    model = TrackModel(model_dir)
    if tracks.dim != model.input_dim:
        raise CmarError(
            f"{catalog_dir}: tracks have {tracks.dim} audio values; the track model {model_dir} expects "
            f"{model.input_dim} (train one on this catalogue: cmar tracks train)"
        )
    emb = np.concatenate([model.embed(tracks.vectors[i : i + EMBED_BATCH]) for i in range(0, len(tracks), EMBED_BATCH)])
    by_artist = {row: idx for row, idx in tracks.by_artist().items() if len(idx) >= min_tracks}
    suspects: list[dict[str, Any]] = []
    for row, idx in tqdm(sorted(by_artist.items()), desc="artists", disable=not progress, leave=False):
        clustering = ward_clusters(emb[idx], model.threshold)
        if clustering.n_clusters < 2:
            continue
        suspects.append(
            {
                "artist_id": str(catalog.artist_ids[row]),
                "name": str(catalog.names[row]),
                "n_tracks": len(idx),
                "confidence": round(clustering.confidence, 4),
                "clusters": [
                    tracks.track_ids[idx[clustering.labels == c]].astype(str).tolist()
                    for c in range(clustering.n_clusters)
                ],
            }
        )
    suspects.sort(key=lambda s: (-s["confidence"], s["artist_id"]))
    return {
        "catalog": str(catalog_dir),
        "track_model": model.version,
        "method": model.manifest.method,
        "threshold": model.threshold,
        "min_tracks": min_tracks,
        "n_tracks": len(tracks),
        "n_artists_checked": len(by_artist),
        "n_suspected": len(suspects),
        "suspected": suspects,
    }


def summary(report: dict[str, Any], shown: int = 50) -> str:
    """summary.md of a disambiguation report: the most confident suspects first."""
    lines = [
        "# Suspected homonyms and mis-filed tracks",
        "",
        f"Track model {report['track_model']} ({report['method']}, Ward threshold {report['threshold']:.3f}); "
        f"{report['n_artists_checked']:,} artists with {report['min_tracks']}+ tracks checked, "
        f"{report['n_suspected']:,} split into 2 or more clusters.",
        "",
        "| artist | name | tracks | clusters (sizes) | confidence |",
        "|---|---|---|---|---|",
    ]
    for s in report["suspected"][:shown]:
        sizes = ", ".join(str(len(c)) for c in s["clusters"])
        cells = [_cell(s["artist_id"]), _cell(s["name"]), str(s["n_tracks"]), sizes, f"{s['confidence']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    if report["n_suspected"] > shown:
        lines.append(f"\n{report['n_suspected'] - shown} more in disambiguation.json.")
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text safe in a Markdown table cell: pipes escaped, line breaks made spaces."""
    return " ".join(str(text).split()).replace("|", "\\|")
