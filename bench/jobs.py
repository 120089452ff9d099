"""The offline jobs, timed: each `cmar` command in its own process, with its wall time and peak memory."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import CmarError
from core.manifest import IndexManifest, read_manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Measured:
    """One job's wall time (s) and peak resident memory (MiB)."""

    wall_s: float
    peak_rss_mb: float


def run_cmar(args: list[str], work: Path, quiet: bool = True) -> Measured:
    """Run `cmar ARGS` in a child process; its wall time and peak memory, or CmarError with its last output lines.

    The child is the installed command line (`python -m cli.main`); its own peak resident
    memory comes from `os.wait4`, so concurrent or earlier children do not count.
    """
    work.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "cli.main", *(["-q"] if quiet else []), *args]
    log.info("running cmar %s", " ".join(args))
    started = time.perf_counter()
    with open(work / "job.log", "wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        lines = (work / "job.log").read_text(errors="replace").strip().splitlines()
        raise CmarError(f"cmar {args[0]} failed (exit {process.returncode}): {' | '.join(lines[-3:])}")
    return Measured(wall, usage.ru_maxrss / 1024)  # KiB on Linux


def training(checkpoint: Path, measured: Measured) -> dict[str, Any]:
    """Seconds per epoch and in total of a `cmar train` run, from its train.json."""
    from core.artifacts import TRAIN_FILE

    record = json.loads((checkpoint / TRAIN_FILE).read_text())
    epochs = len(record["history"])
    return {
        "epochs": epochs,
        "best_epoch": record["best_epoch"],
        "n_train": record["n_train"],
        "train_s": round(record["seconds"], 2),
        "s_per_epoch": round(record["seconds"] / max(epochs, 1), 3),
        "wall_s": round(measured.wall_s, 2),
        "peak_rss_mb": round(measured.peak_rss_mb),
    }


def build(index_dir: Path, measured: Measured) -> dict[str, Any]:
    """Build throughput and index size from an index folder's manifest (`build` of bench.json)."""
    from core.artifacts import INDEX_FILE

    manifest = read_manifest(index_dir, IndexManifest, verify=False)
    timings = manifest.build.model_dump(exclude_none=True)
    n = manifest.n_artists
    folder_bytes = sum(f.bytes for f in manifest.files.values())
    return {
        "n_artists": n,
        "index_type": manifest.index_type,
        "encode_fuse_artists_per_s": round(n / max(timings["encode_fuse_s"], 1e-9)),
        "index_artists_per_s": round(n / max(timings["index_s"], 1e-9)),
        "bytes_per_artist": round((index_dir / INDEX_FILE).stat().st_size / n, 1),
        "folder_bytes_per_artist": round(folder_bytes / n, 1),
        "raw_vector_bytes": 4 * manifest.embedding_dim,
        "peak_rss_mb": round(measured.peak_rss_mb),
        "wall_s": round(measured.wall_s, 2),
        "timings_s": {k: v for k, v in timings.items() if k.endswith("_s")},
        "search": manifest.search.model_dump(),
    }
