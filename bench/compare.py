"""`cmar compare` at scale: two related spaces of many items, timed as a user runs the command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bench import jobs

ITEMS = 100_000
DIM = 200
CUTOFFS = (10, 200)
TARGET_S = 60.0  # issue 13: two spaces of 100,000 items compare at n = 200 in under a minute


def measure(work: Path, items: int = ITEMS, dim: int = DIM, cutoffs: tuple[int, ...] = CUTOFFS) -> dict[str, Any]:
    """Write two (items, dim) spaces as .npy files with an ids file and time `cmar compare` on them.

    The second space is the first plus Gaussian noise of half its scale, so the neighbour lists
    partly agree, like two trainings of one model. Returns the wall time (s),
    the peak memory (MiB) and the measured S_n.
    """
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    first = rng.standard_normal((items, dim), dtype=np.float32)
    second = first + 0.5 * rng.standard_normal((items, dim), dtype=np.float32)
    np.save(work / "first.npy", first)
    np.save(work / "second.npy", second)
    (work / "ids.csv").write_text("id\n" + "\n".join(f"item{i}" for i in range(items)) + "\n")
    del first, second
    out = work / "compare"
    args = ["compare", str(work / "first.npy"), str(work / "second.npy"), "--ids", str(work / "ids.csv")]
    measured = jobs.run_cmar([*args, "--n", *map(str, cutoffs), "--out", str(out)], work)
    result = json.loads((out / "compare.json").read_text())
    return {
        "items": items,
        "dim": dim,
        "cutoffs": list(cutoffs),
        "metric": result["metric"],
        "wall_s": round(measured.wall_s, 2),
        "peak_rss_mb": round(measured.peak_rss_mb),
        "S": {n: matrix[0][1] for n, matrix in result["S"].items()},
        "command": "cmar compare first.npy second.npy --ids ids.csv",
    }
