"""Read a map folder (`cmar map`): 2D coordinates of a space's items and how they were made."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.artifacts import MAP_FILE, MAP_MANIFEST_FILE
from core.errors import CmarError
from core.files import sha256_file


@dataclass
class MapFolder:
    """A map: item ids (N,), their coordinates (N, 2) float32, and the manifest (method, seed, source, preservation)."""

    ids: np.ndarray
    xy: np.ndarray
    manifest: dict[str, Any]


def read_map_folder(folder: Path) -> MapFolder:
    """Read and check a map folder; CmarError naming the file if it is not one."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MAP_MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise CmarError(f"{folder}: no readable {MAP_MANIFEST_FILE}; not a map folder (cmar map)") from None
    if not isinstance(manifest, dict) or manifest.get("kind") != "map":
        raise CmarError(f"{folder}: expected a map folder (manifest kind 'map', from cmar map)")
    expected = (manifest.get("sha256") or {}).get(MAP_FILE)
    if expected is not None and sha256_file(folder / MAP_FILE) != expected:
        raise CmarError(f"{folder / MAP_FILE}: its sha256 is not the one the manifest records (changed?)")
    try:
        table = pq.read_table(folder / MAP_FILE)
        ids = np.asarray(table.column("id").to_pylist(), dtype=object).astype(str)
        xy = np.column_stack([table.column("x").to_numpy(), table.column("y").to_numpy()]).astype(np.float32)
    except (OSError, KeyError, pa.ArrowInvalid) as exc:
        raise CmarError(f"{folder / MAP_FILE}: not a readable map ({exc})") from None
    if not np.isfinite(xy).all():
        raise CmarError(f"{folder / MAP_FILE}: coordinates must be finite")
    if len(np.unique(ids)) != len(ids):
        raise CmarError(f"{folder / MAP_FILE}: ids must be unique")
    return MapFolder(ids, xy, manifest)
