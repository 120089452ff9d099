"""Which FAISS index a catalogue gets, how it is built, and how close to exact it searches.

Small catalogues get an exact inner-product index (`IndexFlatIP`): every answer is the true
top k. Above `EXACT_LIMIT` artists an exact search costs too much per query, so the index is
a graph (`IndexHNSWFlat`, M = 32, vectors stored in full so the scores stay exact cosines).
An inverted file (IVF) was measured first and rejected: on the synthetic catalogue's fused
vectors a top 200 spreads over many cells, and recall@200 of 0.95 needed an eighth of all
cells visited (a third of an exact scan), where HNSW reached it at efSearch 200 in 0.6 ms.
The graph's `efSearch` is chosen at build time as the smallest value in `EF_SEARCH` whose
recall@200 against exact search reaches `RECALL_TARGET` on a sample of artists; the setting
and the measured recall go into the manifest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faiss
import numpy as np
from tqdm import tqdm

from core.search import EXACT_LIMIT, RECALL_K, RECALL_TARGET
from core.vectors import FloatArray

log = logging.getLogger(__name__)

HNSW_M = 32  # graph links per node (64 on the base layer): ~256 bytes per artist beside the vector
HNSW_EF_CONSTRUCTION = 40
EF_SEARCH = (200, 256, 320, 400, 512, 768, 1024)  # tried in order; at least k = 200
RECALL_QUERIES = 1000  # sampled artists whose exact top k is the reference


@dataclass(frozen=True)
class Structure:
    """The kind of index: "flat" (exact) or "hnsw"."""

    kind: str

    @property
    def name(self) -> str:
        """The FAISS class, as written into the manifest."""
        return "IndexFlatIP" if self.kind == "flat" else f"IndexHNSWFlat(M={HNSW_M})"


def choose(n: int, exact_limit: int = EXACT_LIMIT) -> Structure:
    """Exact up to `exact_limit` artists, a graph above."""
    return Structure("flat" if n <= exact_limit else "hnsw")


def make(structure: Structure, stored: FloatArray, progress: bool = False, chunk: int = 65536) -> faiss.Index:
    """An index of `structure` holding the stored vectors (N, d), inner product."""
    dim = stored.shape[1]
    index: faiss.Index
    if structure.kind == "flat":
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    for begin in tqdm(range(0, len(stored), chunk), desc="index", unit="chunk", disable=not progress):
        index.add(np.ascontiguousarray(stored[begin : begin + chunk], dtype=np.float32))
    return index


def set_ef_search(index: faiss.Index, ef_search: int) -> None:
    """Candidates kept while a graph is searched (an exact index ignores it)."""
    if isinstance(index, faiss.IndexHNSW) and ef_search > 0:
        index.hnsw.efSearch = ef_search


def recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's exact top k found: found and truth (Q, k) row ids, -1 = none."""
    hits = [
        np.intersect1d(f[f >= 0], t[t >= 0]).size / max(1, int((t >= 0).sum()))
        for f, t in zip(found, truth, strict=True)
    ]
    return float(np.mean(hits)) if hits else 1.0


@dataclass(frozen=True)
class Tuning:
    """The search setting chosen at build time and the recall it measured."""

    ef_search: int  # 0 for an exact index
    recall: float
    k: int
    queries: int


def tune(
    index: faiss.Index,
    stored: FloatArray,
    queries: FloatArray,
    k: int = RECALL_K,
    target: float = RECALL_TARGET,
) -> Tuning:
    """The smallest efSearch in `EF_SEARCH` whose recall@k on `queries` reaches `target`.

    stored: (N, d) the vectors the index holds; queries: (Q, d) in the index's query form.
    The reference is exact search (`faiss.knn`) over `stored`. An exact index is measured as
    it is. If no setting reaches the target the largest is kept, and its recall reported.
    """
    k = min(k, len(stored))
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    _, truth = faiss.knn(queries, np.ascontiguousarray(stored, dtype=np.float32), k, metric=faiss.METRIC_INNER_PRODUCT)
    if not isinstance(index, faiss.IndexHNSW):
        _, found = index.search(queries, k)
        return Tuning(0, recall_at(found, truth), k, len(queries))
    recall = 0.0
    for ef in (e for e in EF_SEARCH if e >= k):
        index.hnsw.efSearch = ef
        _, found = index.search(queries, k)
        recall = recall_at(found, truth)
        log.info("efSearch %d: recall@%d %.4f", ef, k, recall)
        if recall >= target:
            break
    else:
        log.warning("recall@%d %.4f is below %.2f at the largest efSearch %d", k, recall, target, ef)
    return Tuning(ef, recall, k, len(queries))
