"""The 2D map of the served artists (GET /map): a map folder's coordinates, laid over the served index.

A map folder (`cmar map`) holds coordinates for the artists of the space it was made from.
Served artists it does not hold (an index built after the map, artists written through the
API) are placed as openTSNE's transform initialises new points: at the median position of
their `PLACE_K` nearest mapped artists in the served space (by cosine), without the
optimisation that would follow (the serving install carries neither openTSNE nor UMAP).
Each point says how it was placed; with no mapped artist at all, served artists are unplaced.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.vectors import FloatArray
from inference.index import LoadedIndex
from inference.maps import MapFolder, read_map_folder
from service.live import Overlay

log = logging.getLogger(__name__)

PLACE_K = 5  # mapped neighbours whose median position places an artist the map does not hold
CHUNK = 4096  # artists placed per matrix product


def place(vectors: FloatArray, mapped_vectors: FloatArray, mapped_xy: FloatArray, k: int = PLACE_K) -> FloatArray:
    """Positions (B, 2) of unit vectors (B, D): the median of their k nearest mapped vectors' positions (M, 2)."""
    out = np.zeros((len(vectors), 2), dtype=np.float32)
    k = min(k, len(mapped_vectors))
    for begin in range(0, len(vectors), CHUNK):
        cosines = vectors[begin : begin + CHUNK] @ mapped_vectors.T
        nearest = np.argpartition(-cosines, k - 1, axis=1)[:, :k]
        out[begin : begin + CHUNK] = np.median(mapped_xy[nearest], axis=1)
    return out


@dataclass
class Layout:
    """Positions of the built index's artists: (N, 2), and whether each came from the map (else placed)."""

    xy: FloatArray
    from_map: np.ndarray  # (N,) bool
    mapped_rows: np.ndarray  # rows the map holds


class ServedMap:
    """A map folder laid over the served artists (see the module's docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.map: MapFolder = read_map_folder(self.folder)
        self._layouts: dict[int, tuple[LoadedIndex, Layout]] = {}  # by index identity: one per served index
        self._written: tuple[Overlay, FloatArray] | None = None
        self._lock = threading.Lock()

    @property
    def about(self) -> dict[str, object]:
        """What the map is: its folder's and source's names, method, seed, items, and its preservation S_n of
        the source's lists (measured when it was drawn, on its source)."""
        m = self.map.manifest
        source = m.get("source")
        return {  # folder names only: the server's paths are not the clients' business
            "map": self.folder.name,
            "method": m.get("method"),
            "seed": m.get("seed"),
            "source": None if source is None else Path(str(source)).name,
            "n_items": len(self.map.ids),
            "preservation": m.get("preservation", {}),
            "source_index_version": m.get("source_index_version"),
        }

    def layout(self, index: LoadedIndex) -> Layout:
        """The built index's artists' positions (computed once per index)."""
        with self._lock:
            known = self._layouts.get(id(index))
            if known is not None and known[0] is index:
                return known[1]
        position = {a: i for i, a in enumerate(self.map.ids.tolist())}
        at = np.array([position.get(a, -1) for a in index.artist_ids], dtype=np.int64)
        from_map = at >= 0
        xy = np.full((len(index), 2), np.nan, dtype=np.float32)
        xy[from_map] = self.map.xy[at[from_map]]
        mapped_rows = np.flatnonzero(from_map)
        missing = np.flatnonzero(~from_map)
        if missing.size and mapped_rows.size:
            vectors = index.unit_vectors
            xy[missing] = place(vectors[missing], vectors[mapped_rows], xy[mapped_rows])
            log.info("map %s: %d served artists it does not hold placed by neighbours", self.folder, missing.size)
        layout = Layout(xy, from_map, mapped_rows)
        with self._lock:
            self._layouts = {id(index): (index, layout)}  # a swap's index replaces the old one's layout
        return layout

    def written(self, index: LoadedIndex, overlay: Overlay) -> FloatArray:
        """Positions (W, 2) of the written artists of a snapshot, placed by neighbours (NaN when none is mapped)."""
        with self._lock:
            if self._written is not None and self._written[0] is overlay:
                return self._written[1]
        layout = self.layout(index)
        if layout.mapped_rows.size == 0 or not overlay.ids:
            xy = np.full((len(overlay.ids), 2), np.nan, dtype=np.float32)
        else:
            vectors = index.unit_vectors
            xy = place(overlay.vectors, vectors[layout.mapped_rows], layout.xy[layout.mapped_rows])
        with self._lock:
            self._written = (overlay, xy)
        return xy

    def page(
        self,
        index: LoadedIndex,
        overlay: Overlay,
        offset: int,
        limit: int,
        box: tuple[float, float, float, float] | None = None,
    ) -> dict[str, object]:
        """GET /map's answer: what the map is, counts, and a page of the served artists' positions.

        Built-index artists in index order, then written ones (one snapshot of the writes);
        with a `box` only those inside it; each point says whether the map holds it or its
        neighbours placed it. Artists that cannot be placed (the map holds none of the served)
        are counted and listed a page at a time, without a box.
        """
        layout = self.layout(index)
        written = self.written(index, overlay)
        kept = np.flatnonzero(overlay.served(len(index)))
        xy = np.concatenate([layout.xy[kept], written])
        placed = np.isfinite(xy).all(axis=1)
        bounds = [float(v) for v in (*xy[placed].min(axis=0), *xy[placed].max(axis=0))] if placed.any() else None
        inside = placed.copy()
        if box is not None:
            x0, y0, x1, y1 = box
            inside &= (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
        chosen = np.flatnonzero(inside)
        unplaced_rows = np.flatnonzero(~placed)
        n = len(kept)

        def who(j: int) -> tuple[str, str]:
            return (
                (index.artist_ids[kept[j]], index.names[kept[j]])
                if j < n
                else (overlay.ids[j - n], overlay.names[j - n])
            )

        points = []
        for j in chosen[offset : offset + limit].tolist():
            artist_id, name = who(j)
            by = "map" if j < n and layout.from_map[kept[j]] else "neighbours"
            points.append(
                {"artist_id": artist_id, "name": name, "x": float(xy[j, 0]), "y": float(xy[j, 1]), "placed_by": by}
            )
        unplaced = [] if box is not None else [who(j)[0] for j in unplaced_rows[offset : offset + limit].tolist()]
        from_map = int(layout.from_map[kept].sum())
        about = self.about
        version = about["source_index_version"]
        return {
            **about,
            "drawn_for_served_index": None if version is None else version == index.version,  # null: not recorded
            "served": len(xy),
            "served_on_map": from_map,
            "placed_by_neighbours": int(placed.sum()) - from_map,
            "bounds": bounds,
            "total": int(chosen.size),
            "offset": offset,
            "limit": limit,
            "points": points,
            "unplaced_total": int(unplaced_rows.size),
            "unplaced": unplaced,
        }
