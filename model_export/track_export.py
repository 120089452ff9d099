"""`cmar tracks train`: train a track encoder on a catalogue's tracks, choose its Ward threshold, export to ONNX."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import torch

from catalog.tables import TrackTable
from core.artifacts import ENCODER_OUTPUT, TRACK_ONNX_FILE, VECTOR_INPUT
from core.errors import CmarError
from core.files import atomic_folder
from core.manifest import TrackModelManifest, write_manifest
from inference.homonyms import choose_threshold, homonym_groups
from model_export.export import PARITY_TOLERANCE, onnx_export
from model_export.tracks import TrackConfig, TrackEncoder, TrainedTracks, embed, train_tracks

log = logging.getLogger(__name__)

THRESHOLD_DRAWS = 5  # draws of homonym groups among the held-out artists when choosing the threshold
MIN_TRACKS_FOR_GROUPS = 2  # an artist joins a homonym group with at least this many tracks


def split_artists(
    tracks: TrackTable, fraction: float, seed: int
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int64]]:
    """Hold out a seeded `fraction` of the artists with 2+ tracks: (mask of tracks to train on, held-out rows)."""
    rows, counts = np.unique(tracks.rows, return_counts=True)
    eligible = rows[counts >= MIN_TRACKS_FOR_GROUPS]
    n_held = round(fraction * len(eligible))
    held = np.sort(np.random.default_rng(seed).choice(eligible, size=n_held, replace=False)) if n_held else eligible[:0]
    return ~np.isin(tracks.rows, held), held


def threshold_on(
    embeddings: npt.NDArray[np.float32], labels: npt.NDArray[np.int64], artists: npt.NDArray[np.int64], seed: int
) -> tuple[float, float, int]:
    """The Ward threshold with the best mean AMI on homonym groups of `artists`: (threshold, AMI, groups).

    Beside the paper's groups of 2 to 4 artists, every held-out artist alone is a group too
    (AMI 1 when it stays one cluster, 0 when split): `cmar disambiguate` mostly sees artists
    who are one artist, and a threshold tuned on homonyms alone would split them (cmar's choice).
    """
    rng = np.random.default_rng(seed)
    embs = [embeddings[labels == a] for a in artists]
    truths = [np.zeros(len(e), dtype=np.int64) for e in embs]
    for _ in range(THRESHOLD_DRAWS):
        for group in homonym_groups(artists, rng):
            members = np.flatnonzero(np.isin(labels, group))
            embs.append(embeddings[members])
            truths.append(np.unique(labels[members], return_inverse=True)[1])
    if not embs:
        raise CmarError("too few held-out artists with 2+ tracks to choose a clustering threshold")
    threshold, ami = choose_threshold(embs, truths)
    return threshold, ami, len(embs)


def parity_check(encoder: TrackEncoder, path: Path, input_dim: int) -> float:
    """Largest absolute difference between ONNX Runtime and PyTorch on random batches of 1, 7 and 64 tracks."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    for seed, batch in enumerate((1, 7, 64)):
        gen = torch.Generator().manual_seed(seed)
        x = encoder.mean + encoder.std * torch.randn(batch, input_dim, generator=gen)
        with torch.no_grad():
            expected = encoder(x).numpy()
        got = session.run([ENCODER_OUTPUT], {VECTOR_INPUT: x.numpy()})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


def export_track_model(
    trained: TrainedTracks, input_dim: int, threshold: float, metrics: dict[str, Any], out: Path, overwrite: bool
) -> TrackModelManifest:
    """Write the ONNX track encoder and its manifest into `out` (replacing only an earlier track model)."""
    encoder = trained.encoder.eval()
    with atomic_folder(Path(out), "track_model", overwrite) as tmp:
        path = tmp / TRACK_ONNX_FILE
        example = (encoder.mean + encoder.std * torch.randn(4, input_dim, generator=torch.Generator().manual_seed(0)),)
        onnx_export(encoder, example, [VECTOR_INPUT], {"x": {0: torch.export.Dim("batch")}}, path)
        parity = parity_check(encoder, path, input_dim)
        if not parity <= PARITY_TOLERANCE:  # NaN included
            raise CmarError(f"track encoder: ONNX Runtime differs from PyTorch by {parity:.2e} (> {PARITY_TOLERANCE})")
        manifest = write_manifest(
            tmp,
            TrackModelManifest(
                embedding_dim=trained.config.embedding_dim,
                method=trained.config.method,  # type: ignore[arg-type]
                input_dim=input_dim,
                cluster_threshold=threshold,
                training=trained.config.to_dict(),
                metrics={**metrics, "parity_max_abs_diff": parity, "loss_per_100": trained.losses},
            ),
        )
    log.info(
        "track model %s written to %s (parity %.1e, threshold %.3f)", manifest.model_version, out, parity, threshold
    )
    return manifest


def train_track_model(
    catalog_dir: Path, out: Path, config: TrackConfig, progress: bool = True, overwrite: bool = False
) -> TrackModelManifest:
    """Train a track encoder on a catalogue's tracks and export it with its clustering threshold.

    A seeded `config.val_fraction` of the artists with 2+ tracks is held out of training; the
    Ward threshold is the one with the best mean AMI on homonym groups made of them
    (`inference.homonyms`). Raises CmarError when the catalogue has no tracks or too few artists.
    """
    from catalog.io import read_catalog
    from core.outputs import claim_output

    claim_output(Path(out), "track_model", overwrite)
    catalog = read_catalog(catalog_dir)
    if catalog.tracks is None:
        raise CmarError(f"{catalog_dir}: the catalogue has no tracks.parquet; nothing to train a track model on")
    tracks = catalog.tracks
    start = time.perf_counter()
    fit, held = split_artists(tracks, config.val_fraction, config.seed)
    if len(held) < 2:
        eligible = int((np.bincount(tracks.rows) >= MIN_TRACKS_FOR_GROUPS).sum())
        needed = int(np.ceil(1.5 / max(config.val_fraction, 1e-9)))
        raise CmarError(
            f"{catalog_dir}: {eligible} artist(s) with 2+ tracks; {config.val_fraction:.0%} of them are held out to "
            f"choose the clustering threshold and at least 2 are needed, so give about {needed} or more"
        )
    tags = [tracks.tags[i] for i in np.flatnonzero(fit)] if tracks.tags is not None else None
    log.info("training the %s track encoder on %d tracks of %d artists", config.method, int(fit.sum()),
             len(np.unique(tracks.rows[fit])))  # fmt: skip
    trained = train_tracks(tracks.vectors[fit], tracks.rows[fit], tags, config, progress)
    held_tracks = np.isin(tracks.rows, held)
    emb = embed(trained.encoder, tracks.vectors[held_tracks])
    threshold, ami, n_groups = threshold_on(emb, tracks.rows[held_tracks], held, config.seed)
    metrics = {
        "n_train_tracks": int(fit.sum()),
        "n_held_out_artists": len(held),
        "threshold_groups": n_groups,
        "threshold_ami": ami,
        "side_info_rate": trained.side_info_rate,
        "train_seconds": round(time.perf_counter() - start, 2),
    }
    return export_track_model(trained, tracks.dim, threshold, metrics, out, overwrite)
