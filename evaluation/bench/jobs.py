"""The offline jobs, timed: each `cmar` command in its own process, with its wall time and peak memory.

`python -m evaluation.bench.jobs OUT.json -- ARGS...` runs `cmar ARGS...` and writes its exit
code, wall time and peak resident memory (the process's own high-water mark) to OUT.json.
"""

from __future__ import annotations

import json
import logging
import resource
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
    """Run `cmar ARGS` in a child process; raise CmarError with its last output lines if it fails."""
    work.mkdir(parents=True, exist_ok=True)
    report = work / "job.json"
    command = [sys.executable, "-m", "evaluation.bench.jobs", str(report), "--", *(["-q"] if quiet else []), *args]
    log.info("running cmar %s", " ".join(args))
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 or not report.exists():
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise CmarError(f"cmar {args[0]} failed (exit {done.returncode}): {tail}")
    measured = json.loads(report.read_text())
    report.unlink()
    return Measured(measured["wall_s"], measured["peak_rss_mb"])


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
    timings = manifest.build
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
        "search": manifest.search,
    }


def main(argv: list[str]) -> int:
    """Run `cmar` with the arguments after `--` and write what it cost to the JSON file before it."""
    from cli.main import main as cmar

    if len(argv) < 2 or argv[1] != "--":
        sys.stderr.write("usage: python -m evaluation.bench.jobs OUT.json -- CMAR_ARGS...\n")
        return 2
    started = time.perf_counter()
    code = cmar(argv[2:])
    if code == 0:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        Path(argv[0]).write_text(json.dumps({"wall_s": time.perf_counter() - started, "peak_rss_mb": peak}))
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
