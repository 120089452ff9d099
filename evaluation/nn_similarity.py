"""NN-similarity between latent spaces: how much the nearest-neighbour lists change (Tovstogan et al. 2022).

For a reference item and a cutoff n, S_n(X, Y) = |L_X,n ∩ L_Y,n| / n, where L_X,n is the
item's n nearest other items in space X (Tovstogan, Serra and Bogdanov, "Similarity of
Nearest-Neighbor Query Results in Deep Latent Spaces", SMC 2022, Section 2); it is averaged
over the reference items. Spaces are compared over the items they share.

Neighbour lists are exact: FAISS's flat (brute-force) search proposes `n + TIE_MARGIN`
candidates by inner product (cosine: of unit vectors; Euclidean: of vectors extended so that
the inner product ranks by distance, the candidates' distances then computed again from their
differences in float64, so equal distances tie exactly), and each list is then ordered by
(score, item index), so equal scores rank the lower index first, whatever FAISS's order; an
item is never its own neighbour. A tie group wider than the margin at the cutoff is the only
case that could differ from a full sort.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

log = logging.getLogger(__name__)

Metric = Literal["cosine", "euclidean"]
TIE_MARGIN = 8


def neighbour_lists(vectors: np.ndarray, n: int, metric: Metric = "cosine", batch: int = 4096) -> np.ndarray:
    """Each item's n nearest other items, best first, ties by lower index: (N, d) -> (N, n) int64 rows.

    Raises ValueError if n >= N or the vectors are not finite.
    """
    x = np.asarray(vectors, dtype=np.float64)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValueError("vectors must be a finite (N, d) array")
    count = x.shape[0]
    if not 1 <= n < count:
        raise ValueError(f"a cutoff must be between 1 and {count - 1} (the items besides the reference), got {n}")
    if metric == "cosine":  # unit vectors, made in float64: no norm overflows or underflows
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        base = queries = (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    else:  # -|q - b|^2 ranks as 2 q.b - |b|^2 = [q, 1] . [2b, -|b|^2]
        # Centred and scaled into the unit ball first (neither changes the order of distances), so
        # an offset or a scale far from 1 cannot cancel or overflow in float32.
        centred = x - x.mean(axis=0)
        radius = float(np.sqrt((centred**2).sum(axis=1).max()))
        y = centred / radius if radius > 0 else centred
        squared = (y**2).sum(axis=1, keepdims=True)
        base = np.hstack([2 * y, -squared]).astype(np.float32)
        queries = np.hstack([y, np.ones((count, 1))]).astype(np.float32)
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(np.ascontiguousarray(base))
    wanted = min(count, n + 1 + TIE_MARGIN)
    out = np.empty((count, n), dtype=np.int64)
    for begin in range(0, count, batch):
        q = np.ascontiguousarray(queries[begin : begin + batch])
        scores, rows = index.search(q, wanted)
        rows = np.where(rows == np.arange(begin, begin + len(q))[:, None], -1, rows)  # never one's own neighbour
        if metric == "euclidean":  # the candidates' distances again, from the given values' differences in float64
            scores = _squared_distances(x[begin : begin + len(q)], x, rows)
        out[begin : begin + len(q)] = _best_first(scores, rows, count)[:, :n]
    return out


def _squared_distances(queries: np.ndarray, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Minus each query's squared distance to its candidates `rows` of x (-1: empty), in float64: (B, m)."""
    out = np.full(rows.shape, -np.inf)
    chunk = max(1, 2**22 // max(1, rows.shape[1] * x.shape[1]))  # about 32 MB of differences at a time
    for begin in range(0, len(rows), chunk):
        picked = rows[begin : begin + chunk]
        gaps = x[np.maximum(picked, 0)] - queries[begin : begin + chunk, None, :]
        out[begin : begin + chunk] = np.where(picked < 0, -np.inf, -np.einsum("ijk,ijk->ij", gaps, gaps))
    return out


def _best_first(scores: np.ndarray, rows: np.ndarray, count: int) -> np.ndarray:
    """Order each row of candidates by score, descending, then by the lower index; empty slots (-1) last."""
    gone = rows < 0
    order = np.lexsort((np.where(gone, count, rows), np.where(gone, np.inf, -scores) + 0.0), axis=-1)  # -0 ties 0
    return np.take_along_axis(rows, order, axis=1)


def overlap(lists_x: np.ndarray, lists_y: np.ndarray, n: int) -> np.ndarray:
    """Per item, S_n: the share of the first n of each list that the two lists have in common, (N,) floats.

    Each list holds distinct items, so an item counted twice in the two lists' union is shared.
    """
    both = np.sort(np.hstack([lists_x[:, :n], lists_y[:, :n]]), axis=1)
    return (both[:, 1:] == both[:, :-1]).sum(axis=1) / n


@dataclass(frozen=True)
class Space:
    """A named set of item vectors: ids (N,) and vectors (N, d)."""

    name: str
    ids: np.ndarray
    vectors: np.ndarray
    metric: Metric | None = None  # its own metric (a 2D map: Euclidean), else the comparison's


def shared(spaces: list[Space]) -> tuple[np.ndarray, list[np.ndarray], dict[str, int]]:
    """The ids every space has (sorted), each space's rows of them, and each space's count of items left out."""
    common = spaces[0].ids
    for space in spaces[1:]:
        common = np.intersect1d(common, space.ids)
    rows = []
    for space in spaces:
        order = np.argsort(space.ids, kind="stable")
        rows.append(order[np.searchsorted(space.ids[order], common)])
    return common, rows, {s.name: int(len(s.ids) - len(common)) for s in spaces}


def compare(spaces: list[Space], cutoffs: list[int], metric: Metric = "cosine") -> dict[str, object]:
    """S_n between every pair of spaces over their shared items: means (matrices in the spaces' order) and quartiles.

    Returns {"spaces", "metric", "cutoffs", "n_items", "only_in_one", "S": {n: [[mean]]},
    "quartiles": {n: {"A|B": [q1, median, q3]}}}. Raises ValueError for fewer than two shared
    items per cutoff.
    """
    common, rows, left_out = shared(spaces)
    top = max(cutoffs)
    if len(common) <= top:
        raise ValueError(f"the spaces share {len(common)} items; the largest cutoff {top} needs more than that")
    lists = []
    for space, picked in zip(spaces, rows, strict=True):
        own = space.metric or metric
        log.info("neighbour lists of %s: %d items, n = %d, %s", space.name, len(common), top, own)
        lists.append(neighbour_lists(space.vectors[picked], top, own))
    means: dict[str, list[list[float]]] = {}
    quartiles: dict[str, dict[str, list[float]]] = {}
    for n in cutoffs:
        matrix = np.eye(len(spaces))
        quartiles[str(n)] = {}
        for a in range(len(spaces)):
            for b in range(a + 1, len(spaces)):
                per_item = overlap(lists[a], lists[b], n)
                matrix[a, b] = matrix[b, a] = float(per_item.mean())
                q = np.quantile(per_item, [0.25, 0.5, 0.75])
                quartiles[str(n)][f"{spaces[a].name}|{spaces[b].name}"] = [round(float(v), 4) for v in q]
        means[str(n)] = [[round(float(v), 4) for v in row] for row in matrix]
    return {
        "spaces": [s.name for s in spaces],
        "metric": metric,
        "cutoffs": list(cutoffs),
        "n_items": len(common),
        "only_in_one": left_out,
        "S": means,
        "quartiles": quartiles,
    }


def load_space(spec: str, ids_file: str | None = None) -> Space:
    """A space from the command line (`cmar compare`); a CmarError naming the spec when it cannot be read.

    - an index folder: the served (fused) vectors of its artists;
    - `CATALOG_DIR#MODALITY`: a catalogue's input vectors of a modality, for the artists that
      have it (a set modality, tags: each artist's weighted mean of its items' vectors);
    - `MODEL_DIR#MODALITY@CATALOG_DIR`: that modality of the catalogue's artists through the
      model's encoder (its own unit embeddings in the shared space, never completed);
    - `FILE.npy`: rows are items, with `ids_file` (a CSV or text file whose first column is one id per row);
    - a map folder (`cmar map`): its 2D coordinates, compared by Euclidean distance whatever the metric.
    """
    from core.errors import CmarError

    if "#" in spec and "@" in spec.rpartition("#")[2]:
        return encoder_space(spec)
    if "#" in spec:
        return catalog_space(spec)
    path = Path(spec)
    if path.suffix == ".npy":
        if ids_file is None:
            raise CmarError(f"{spec}: a .npy space needs --ids FILE (one id per row, first column)")
        try:
            vectors = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CmarError(f"{spec}: not a readable .npy array ({exc})") from None
        lines = [ln for ln in Path(ids_file).read_text(encoding="utf-8").splitlines() if ln.strip()]
        ids = np.array([ln.split(",")[0].strip() for ln in lines])
        if len(ids) == len(vectors) + 1:  # a header row
            ids = ids[1:]
        if vectors.ndim != 2 or len(ids) != len(vectors):
            raise CmarError(f"{spec}: {vectors.shape} vectors for {len(ids)} ids in {ids_file}")
        if len(np.unique(ids)) != len(ids):
            raise CmarError(f"{ids_file}: ids repeat")
        return Space(spec, ids, vectors)
    if (path / "map.parquet").is_file():
        from evaluation.maps import read_map

        return read_map(path)
    if (path / "manifest.json").is_file():
        from inference.index import load_index, vectors_of

        index = load_index(path)
        return Space(spec, np.array(index.artist_ids), vectors_of(index, np.arange(len(index))))
    raise CmarError(
        f"{spec}: not an index folder, a map folder, CATALOG_DIR#MODALITY, MODEL_DIR#MODALITY@CATALOG_DIR or FILE.npy"
    )


def catalog_space(spec: str) -> Space:
    """`CATALOG_DIR#MODALITY`: the catalogue's input vectors of one modality (see `load_space`)."""
    from catalog.io import read_catalog
    from catalog.tables import SetTable
    from core.errors import CmarError

    folder, _, modality = spec.rpartition("#")
    catalog = read_catalog(Path(folder))
    table = catalog.modalities.get(modality)
    if table is None:
        raise CmarError(f"{spec}: the catalogue has no modality {modality!r} (it has {', '.join(catalog.modalities)})")
    values = table.mean_vectors() if isinstance(table, SetTable) else table.values
    return Space(spec, catalog.artist_ids[table.present].astype(str), values[table.present])


def encoder_space(spec: str) -> Space:
    """`MODEL_DIR#MODALITY@CATALOG_DIR`: one encoder's outputs for the catalogue's artists (see `load_space`)."""
    from catalog.io import read_catalog
    from core.errors import CmarError
    from index_build.build import encode_modalities
    from inference.encoder import OnnxModel

    model_dir, _, rest = spec.rpartition("#")
    modality, _, catalog_dir = rest.partition("@")
    model = OnnxModel(Path(model_dir))
    if modality not in model.sessions:
        raise CmarError(f"{spec}: the model has no {modality!r} encoder (it has {', '.join(model.sessions)})")
    catalog = read_catalog(Path(catalog_dir))
    if modality not in catalog.modalities:
        raise CmarError(f"{spec}: the catalogue has no modality {modality!r} (it has {', '.join(catalog.modalities)})")
    rows = np.flatnonzero(catalog.modalities[modality].present)
    vectors = np.zeros((rows.size, model.dim), dtype=np.float32)
    for begin in range(0, rows.size, ENCODE_BATCH):
        part = rows[begin : begin + ENCODE_BATCH]
        vectors[begin : begin + part.size] = encode_modalities(catalog, model, part, [modality])[0][0]
    return Space(spec, catalog.artist_ids[rows].astype(str), vectors)


ENCODE_BATCH = 4096  # artists through an encoder at a time


def summary(report: dict[str, object]) -> str:
    """compare.md: one table of mean S_n per cutoff, spaces in the report's order."""
    names = report["spaces"]
    assert isinstance(names, list)
    lines = [
        "# NN-similarity between spaces",
        "",
        f"{report['n_items']} shared items; {report['metric']} neighbours; items left out per space: "
        f"{report['only_in_one']}. S_n = |L_X,n ∩ L_Y,n| / n, the mean over the shared items "
        "(Tovstogan et al. 2022).",
        "",
    ]
    means = report["S"]
    assert isinstance(means, dict)
    for n, matrix in means.items():
        lines += [f"## S_{n}", "", "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for name, row in zip(names, matrix, strict=True):
            lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |")
        lines += [""]
    return "\n".join(lines)


def heatmaps(report: dict[str, object], out_dir: Path) -> list[Path]:
    """One heatmap of the mean S_n matrix per cutoff (the paper's Figure 2 layout): heatmap_S{n}.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = report["spaces"]
    means = report["S"]
    assert isinstance(names, list) and isinstance(means, dict)
    written = []
    size = 2.5 + 0.45 * len(names)
    for n, matrix in means.items():
        fig, ax = plt.subplots(figsize=(size + 1.2, size))
        im = ax.imshow(np.array(matrix), vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(names)), [str(x)[-28:] for x in names], rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), [str(x)[-28:] for x in names], fontsize=7)
        if len(names) <= 12:
            for i, row in enumerate(matrix):
                for j, v in enumerate(row):
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < 0.6 else "k")
        fig.colorbar(im, ax=ax, label=f"S_{n}")
        ax.set_title(f"NN-similarity S_{n} ({report['metric']})")
        fig.tight_layout()
        path = out_dir / f"heatmap_S{n}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
