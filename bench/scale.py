"""A large synthetic catalogue: build it, search it, serve it, and load the same vectors into a peer."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bench import jobs, server
from bench.loadgen import Request, run_load_subprocess
from bench.peer import query_latencies_ms, run_usearch
from core.vectors import as_queries
from index_build.structure import recall_at
from inference.index import LoadedIndex, load_index, vectors_of

log = logging.getLogger(__name__)

QUERIES = 1000  # sampled artists for latency and recall
K = 200


def build(model: Path, work: Path, n_artists: int, exact_limit: int | None = None) -> tuple[dict[str, Any], Path, Path]:
    """Generate a synthetic catalogue of `n_artists` and build its index with `model`.

    Returns `scale` and `build` sections of bench.json (without the query figures), and the
    catalogue and index folders.
    """
    catalog, index = work / "catalog", work / "index"
    made = jobs.run_cmar(["catalog", "synthetic", str(catalog), "--n-artists", str(n_artists)], work)
    args = ["build-index", str(catalog), "--model", str(model), "--out", str(index)]
    built = jobs.run_cmar([*args, *(["--exact-limit", str(exact_limit)] if exact_limit is not None else [])], work)
    section = jobs.build(index, built)
    scale = {
        "n_artists": n_artists,
        "n_indexed": section["n_artists"],
        "generate_s": round(made.wall_s, 1),
        "build_s": round(built.wall_s, 1),
        "index_type": section["index_type"],
        "recall_at_200": section["search"].get("recall"),
        "ef_search": section["search"].get("ef_search"),
        "build_peak_rss_mb": section["peak_rss_mb"],
    }
    return scale, catalog, index


def _queries(loaded: LoadedIndex, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sampled artists' vectors (Q, D), the same in the index's query form (Q, stored dim), each
    with its own modality-balance slot, and those slots (Q,)."""
    rows = np.sort(np.random.default_rng(seed).choice(len(loaded), min(QUERIES, len(loaded)), replace=False))
    unit, slots = vectors_of(loaded, rows), loaded.slots[rows]
    augmented = loaded.manifest.stored_dim > loaded.manifest.embedding_dim
    return unit, (as_queries(unit, slots, loaded.balance.width) if augmented else unit), slots


def search_latency(index_dir: Path) -> dict[str, Any]:
    """Single-query latency (k = 200, one thread, as the service searches) and recall@200 of our index."""
    loaded = load_index(index_dir, verify=False)
    unit, queries, slots = _queries(loaded)
    stored = loaded.index.reconstruct_n(0, loaded.index.ntotal)
    k = min(K, len(loaded))
    _, truth = faiss.knn(queries, stored, k, metric=faiss.METRIC_INNER_PRODUCT)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        # each query with its own slot, carried as a last column so that the timed call gets one row
        tagged = np.concatenate([unit, slots[:, None].astype(np.float32)], axis=1)
        ms = query_latencies_ms(lambda q: loaded.search(q[None, :-1], k, q[-1:].astype(np.int64))[1][0], tagged)
        _, found = loaded.search(unit, k, slots)
    finally:
        faiss.omp_set_num_threads(threads)
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "recall_at_200_queries": round(recall_at(found, truth), 4),
        "_stored": stored,
        "_queries": queries,
        "_truth": truth,
    }


def serve(model: Path, index_dir: Path, log_file: Path, duration_s: float) -> dict[str, Any]:
    """Start-up time and memory of the service on this index, and GET similar (k = 10) at concurrency 1.

    The requests cycle through 50,000 artists, more than a run of a few seconds reaches, so
    each answer is a search rather than a cached body.
    """
    loaded = load_index(index_dir, verify=False)
    rows = np.random.default_rng(1).choice(len(loaded), min(50_000, len(loaded)), replace=False)
    ids = [loaded.artist_ids[i] for i in rows]
    del loaded
    with server.start(model, index_dir, log_file) as running:
        result = run_load_subprocess(
            running.port, [Request("GET", f"/artists/{a}/similar?k=10") for a in ids], 1, duration_s
        )
        return {
            "startup_s": round(running.startup_s, 2),
            "service_rss_mb": round(running.rss_mb()),
            "http_get_similar_k10_c1": result.to_dict(),
        }


def peer(ours: dict[str, Any], threads: int = 0) -> dict[str, Any]:
    """The same stored vectors, queries and exact truth in usearch; its figures and ratios to ours."""
    started = time.perf_counter()
    result = run_usearch(ours["_stored"], ours["_queries"], ours["_truth"], k=ours["_truth"].shape[1], threads=threads)
    log.info("peer measured in %.0f s", time.perf_counter() - started)
    return {
        **result.to_dict(),
        "ours_p50_ms": ours["p50_ms"],
        "ours_recall_at_200": ours["recall_at_200_queries"],
        "p50_ratio_to_ours": round(result.p50_ms / ours["p50_ms"], 3),
        "recall_ratio_to_ours": round(result.recall_at_200 / max(ours["recall_at_200_queries"], 1e-9), 3),
    }
