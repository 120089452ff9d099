"""A peer engine on our own vectors: usearch's HNSW measured the way we measure our FAISS index.

usearch is a small single-file HNSW engine (one C++ header, a pip wheel with no other
dependencies) that a team might pick instead of FAISS. To make the comparison fair it is
given identical inputs: the very vectors our index holds (including any extra coordinate,
treated as opaque; inner product), the same queries and the same exact ground truth, computed
by the caller. Vectors are stored as f32, like our index (usearch would otherwise pick a
smaller type such as bf16 on CPUs that support it). We report the build time, the
single-query latency (one query at a time, wall clock, k=200) and recall@200, with
`expansion_search` raised step by step until recall@200 reaches 0.95.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.search import RECALL_TARGET
from index_build.structure import recall_at

log = logging.getLogger(__name__)

EXPANSIONS = (200, 256, 384, 512, 768)  # expansion_search candidates; each must be >= k
WARMUP = 10


def query_latencies_ms(search_one: Callable[[np.ndarray], np.ndarray], queries: np.ndarray) -> np.ndarray:
    """Wall-clock milliseconds of `search_one(q)` for each row q (shape (dim,)) of queries (Q, dim).

    The first `WARMUP` queries are run once beforehand and not recorded. Returns shape (Q,).
    """
    for q in queries[:WARMUP]:
        search_one(q)
    out = np.empty(len(queries), dtype=np.float64)
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        search_one(q)
        out[i] = (time.perf_counter() - t0) * 1000.0
    return out


@dataclass
class PeerResult:
    """One peer engine's numbers on our vectors."""

    engine: str
    build_s: float
    p50_ms: float
    p99_ms: float
    recall_at_200: float
    bytes_per_vector: float

    def to_dict(self) -> dict[str, Any]:
        """The result as a plain JSON-ready dict."""
        return asdict(self)


def _keys(keys: np.ndarray, k: int) -> np.ndarray:
    """usearch keys (uint64, possibly fewer than k) as int64 ids padded with -1 to length k."""
    out = np.full(k, -1, dtype=np.int64)
    keys = np.asarray(keys, dtype=np.int64)[:k]
    out[: keys.size] = keys
    return out


def run_usearch(
    vectors: np.ndarray, queries: np.ndarray, truth: np.ndarray, k: int = 200, threads: int = 0, *, dtype: str = "f32"
) -> PeerResult:
    """Build a usearch HNSW inner-product index on vectors (N, d) and measure it against truth (Q, k).

    Keys are row numbers. `threads` (0 = all cores) is used for the build and the batched recall
    searches; latency is measured with single queries on one thread. expansion_search is the first
    of `EXPANSIONS` (those >= k) whose recall@k reaches `RECALL_TARGET`, else the largest tried.
    """
    import usearch
    from usearch.index import BatchMatches, Index

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    index = Index(ndim=vectors.shape[1], metric="ip", dtype=dtype)
    t0 = time.perf_counter()
    index.add(np.arange(len(vectors), dtype=np.uint64), vectors, threads=threads)
    build_s = time.perf_counter() - t0
    log.info("usearch: %d vectors of dim %d added in %.1f s", len(vectors), vectors.shape[1], build_s)

    def search_one(q: np.ndarray) -> np.ndarray:
        return _keys(index.search(q, k, threads=1).keys, k)  # a 1-d query gives Matches, keys shape (<=k,)

    candidates = [e for e in EXPANSIONS if e >= k] or [k]
    recall = 0.0
    for expansion in candidates:
        index.expansion_search = expansion  # type: ignore[misc]  # has a setter; mypy misreads its placement
        batch = index.search(queries, k, threads=threads)  # a 2-d query gives BatchMatches: keys (Q, k), counts (Q,)
        assert isinstance(batch, BatchMatches)
        found = np.stack([_keys(keys[:count], k) for keys, count in zip(batch.keys, batch.counts, strict=True)])
        recall = recall_at(found, truth[:, :k])
        log.info("usearch: expansion_search=%d recall@%d=%.4f", expansion, k, recall)
        if recall >= RECALL_TARGET:
            break
    else:
        log.warning("usearch: recall@%d %.4f below %.2f at the largest expansion_search", k, recall, RECALL_TARGET)

    ms = query_latencies_ms(search_one, queries)
    engine = (
        f"usearch {usearch.__version__} HNSW ({dtype}, connectivity={index.connectivity}, "
        f"expansion_add={index.expansion_add}, expansion_search={index.expansion_search})"
    )
    return PeerResult(
        engine=engine,
        build_s=build_s,
        p50_ms=float(np.percentile(ms, 50)),
        p99_ms=float(np.percentile(ms, 99)),
        recall_at_200=recall,
        bytes_per_vector=index.serialized_length / max(len(vectors), 1),
    )
