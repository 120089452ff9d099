"""2D maps of a space that keep its neighbours, measured by NN-similarity (Tovstogan et al., SMC 2022).

`cmar map SPACE --method M --seed S --out DIR` projects any space `cmar compare` reads to 2D
and writes a map folder: `map.parquet` (id, x, y) and `manifest.json` (kind "map": the method,
its parameters, the seed, the source space, and the map's preservation S_n of the source's
neighbour lists at every cutoff, Euclidean in 2D against the source metric). Methods: PCA and
a Gaussian random projection (scikit-learn), t-SNE (openTSNE), UMAP (umap-learn).
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from core.artifacts import MAP_FILE, MAP_MANIFEST_FILE
from core.errors import CmarError
from core.files import atomic_folder, sha256_file
from evaluation.nn_similarity import Metric, Space, neighbour_lists, overlap
from inference.maps import read_map_folder

log = logging.getLogger(__name__)

METHODS = ("pca", "random", "tsne", "umap")
DEFAULT_METHOD = "tsne"
CUTOFFS = (5, 10, 100, 200)
# Each method's parameters (cmar's defaults, chosen on the OLGA fused space: README, Maps).
PARAMS: dict[str, dict[str, Any]] = {
    "pca": {},
    "random": {},
    # Early exaggeration (12, 250 iterations), then an exaggeration cool-down 4 -> 2 -> 1 of 250
    # iterations each: the annealing settles the clusters' places before the fine layout, so
    # maps of two seeds agree (S_10 0.79 -> 0.91 on OLGA) while they keep as many neighbours.
    "tsne": {
        "perplexity": 15,
        "early_exaggeration": 12,
        "cooldown": [4, 2, 1],
        "iterations_per_phase": 250,
        "cooldown_from_items": 4,  # 3 items (the fewest a map takes) collapse in it: exaggeration 1, 500 iterations
        "exact_neighbours_up_to": 20_000,
    },
    "umap": {"n_neighbors": 15, "min_dist": 0.1},
}


def project(vectors: npt.ArrayLike, method: str, seed: int, metric: Metric = "cosine") -> npt.NDArray[np.float32]:
    """(N, d) vectors -> (N, 2) coordinates by `method` (PARAMS), seeded; CmarError for an unknown method."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if method == "pca":
        from sklearn.decomposition import PCA

        y = PCA(n_components=2, random_state=seed).fit_transform(_for_metric(x, metric))
    elif method == "random":
        from sklearn.random_projection import GaussianRandomProjection

        y = GaussianRandomProjection(n_components=2, random_state=seed).fit_transform(_for_metric(x, metric))
    elif method == "tsne":
        import openTSNE

        params = PARAMS["tsne"]
        embedding = openTSNE.TSNE(
            metric=metric,
            perplexity=min(params["perplexity"], max(1, (len(x) - 1) // 3)),
            neighbors="exact" if len(x) <= params["exact_neighbours_up_to"] else "auto",
            random_state=seed,  # the jitter of the PCA start (and Annoy's trees above the exact limit)
            n_jobs=2,
        ).prepare_initial(x)
        steps = params["iterations_per_phase"]
        phases = [(params["early_exaggeration"], steps)]
        if len(x) >= params["cooldown_from_items"]:
            phases += [(exaggeration, steps) for exaggeration in params["cooldown"]]
        else:
            phases += [(1, 2 * steps)]
        for exaggeration, n_iter in phases:
            embedding = embedding.optimize(n_iter=n_iter, exaggeration=exaggeration, momentum=0.8)
        y = np.asarray(embedding)
    elif method == "umap":
        with warnings.catch_warnings(record=True) as said:  # its notes (seeded: one thread; a graph in parts)
            warnings.simplefilter("always")
            import umap

            y = umap.UMAP(
                n_neighbors=min(PARAMS["umap"]["n_neighbors"], len(x) - 1),
                min_dist=PARAMS["umap"]["min_dist"],
                metric=metric,
                random_state=seed,
            ).fit_transform(x)
        for note in said:
            log.info("umap: %s", note.message)
    else:
        raise CmarError(f"unknown map method {method!r}; expected one of {', '.join(METHODS)}")
    return np.asarray(y, dtype=np.float32)


def _for_metric(x: npt.NDArray[np.float32], metric: Metric) -> npt.NDArray[np.float32]:
    """Linear projections of a cosine space project the unit vectors."""
    if metric == "cosine":
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def preservation(
    source: npt.ArrayLike, coords: npt.ArrayLike, cutoffs: tuple[int, ...], metric: Metric
) -> dict[str, float]:
    """Mean S_n between the source's neighbour lists (its metric) and the map's (Euclidean in 2D), per cutoff."""
    usable = [c for c in cutoffs if c < len(coords)]  # type: ignore[arg-type]
    if not usable:
        return {}
    top = max(usable)
    return shares_kept(neighbour_lists(np.asarray(source), top, metric),
                       neighbour_lists(np.asarray(coords), top, "euclidean"), usable)  # fmt: skip


def shares_kept(lists_x: np.ndarray, lists_y: np.ndarray, cutoffs: list[int]) -> dict[str, float]:
    """Mean S_n of two spaces' neighbour lists (each at least max(cutoffs) long), per cutoff, to 4 decimals."""
    return {str(c): round(float(overlap(lists_x, lists_y, c).mean()), 4) for c in cutoffs}


def make_map(
    space: Space, method: str, seed: int, out: Path, metric: Metric = "cosine", overwrite: bool = False
) -> dict[str, Any]:
    """Project a space, measure its preservation and write the map folder; the manifest as a dict."""
    if method not in METHODS:
        raise CmarError(f"unknown map method {method!r}; expected one of {', '.join(METHODS)}")
    if len(space.ids) < 3:
        raise CmarError(f"{space.name}: {len(space.ids)} items; a map needs at least 3")
    started = time.perf_counter()
    coords = project(space.vectors, method, seed, metric)
    seconds = round(time.perf_counter() - started, 1)
    kept = preservation(space.vectors, coords, CUTOFFS, metric)
    manifest = {
        "kind": "map",
        "method": method,
        "params": PARAMS[method],
        "seed": seed,
        "source": space.name,
        "source_metric": metric,
        "n_items": len(space.ids),
        "preservation": kept,
        "seconds": seconds,
    }
    drawn_for = _index_version(space.name)
    if drawn_for is not None:
        manifest["source_index_version"] = drawn_for  # the service says whether it serves this index
    with atomic_folder(Path(out), "map", overwrite) as tmp:
        table = pa.table(
            {
                "id": pa.array(space.ids.astype(str).tolist(), pa.string()),
                "x": pa.array(coords[:, 0], pa.float32()),
                "y": pa.array(coords[:, 1], pa.float32()),
            }
        )
        pq.write_table(table, tmp / MAP_FILE)
        manifest["sha256"] = {MAP_FILE: sha256_file(tmp / MAP_FILE)}  # checked when read
        (tmp / MAP_MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    log.info("%s map of %d items in %.1f s: S_n kept %s", method, len(space.ids), seconds, kept)
    return manifest


def _index_version(spec: str) -> str | None:
    """The index version of a space that is an index folder (None for other spaces)."""
    from core.manifest import IndexManifest, read_manifest

    path = Path(spec)
    if not (path / "manifest.json").is_file() or (path / MAP_FILE).is_file():
        return None
    try:
        return read_manifest(path, IndexManifest, verify=False).index_version
    except CmarError:
        return None


def read_map(folder: Path) -> Space:
    """A map folder as a 2D space (its items' coordinates); CmarError if it is not one."""
    found = read_map_folder(folder)
    return Space(str(folder), found.ids, found.xy, metric="euclidean")
