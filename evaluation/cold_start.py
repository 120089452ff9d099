"""Cold-start evaluation: artists unseen in training and in the index, queried through POST /similar's code.

A seeded sample of full-coverage artists with ground-truth neighbours is removed from the
catalogue; the model is trained, exported and indexed without them (they are never seen in
training either). Each is then queried with partial inputs, through the service's own
parsing, encoding, search and popularity prior (`service.queries.query_inputs`,
`service.batching.answer_batch`; also without the prior, for top-3 tags and all inputs):
its top-1, top-3 or all tags (as names with their catalogue weights), its audio, its CF
vector, audio + top-3 tags, and everything. nDCG@200 against its ground-truth neighbours
among the indexed artists, with bootstrap CIs, and the mean POP = log(plays + 1) of the 200
returned artists against that of its true neighbours. Baselines: the raw tag embedding (the
weighted mean of the query's PPMI-SVD tag vectors, against the same mean of every indexed
artist's tags) and popularity alone (indexed artists carrying one of the query's top-3 tags,
most played first).
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from catalog.io import write_catalog
from catalog.olga import OlgaData
from catalog.tables import Catalog, SetTable, VectorTable
from evaluation.metrics import bootstrap_ci, ndcg_at_k
from evaluation.retrieval import EdgeTruth
from model_export.config import TrainConfig
from pipeline.workdir import Workdir, build_artifacts

log = logging.getLogger(__name__)

K = 200
N_QUERIES = 500
BATCH = 64  # queries per answer_batch call, as the service's batcher caps them
INPUTS = ("tag_top1", "tag_top3", "tag_all", "audio", "cf", "audio+tag_top3", "all")
ABLATIONS = ("tag_top3", "all")  # also ranked without the popularity prior (`service.search.prior_weight`)


def sample_queries(data: OlgaData, n: int, seed: int) -> npt.NDArray[np.int64]:
    """A seeded sample of up to `n` (at most half) of the artists with every modality and 1+ ground-truth neighbour.

    Sorted rows.
    """
    present = data.catalog.present()
    full = np.flatnonzero(present.all(axis=0))
    truth = EdgeTruth(data.edges, data.catalog.n_artists)
    eligible = full[truth.n_relevant(full, np.arange(data.catalog.n_artists)) > 0]
    rng = np.random.default_rng(seed)  # at most half of them: the rest keep every modality in training
    return np.sort(rng.choice(eligible, size=min(n, len(eligible) // 2), replace=False))


def without(catalog: Catalog, rows: npt.ArrayLike) -> tuple[Catalog, npt.NDArray[np.int64]]:
    """The catalogue without the artists `rows`, and the kept rows (old row of each new row)."""
    keep = np.setdiff1d(np.arange(catalog.n_artists), np.asarray(rows, dtype=np.int64))
    new_row = np.full(catalog.n_artists, -1, dtype=np.int64)
    new_row[keep] = np.arange(len(keep))
    out = Catalog(
        artist_ids=catalog.artist_ids[keep],
        names=catalog.names[keep],
        popularity=None if catalog.popularity is None else catalog.popularity[keep],
    )
    for name, table in catalog.modalities.items():
        if isinstance(table, VectorTable):
            out.modalities[name] = VectorTable(present=table.present[keep], values=table.values[keep])
        else:
            owners = np.repeat(np.arange(catalog.n_artists), np.diff(table.indptr))
            ok = new_row[owners] >= 0
            out.modalities[name] = SetTable.from_rows(
                table.vocab, table.vocab_vectors, len(keep), new_row[owners][ok], table.items[ok], table.weights[ok]
            )
    if catalog.tracks is not None:  # not in OLGA; kept for completeness
        out.tracks = catalog.tracks.moved(new_row)
    return out, keep


def query_body(catalog: Catalog, row: int, kind: str) -> dict[str, Any]:
    """The JSON body of POST /similar that gives artist `row`'s inputs of `kind` (tags by name, heaviest first)."""
    body: dict[str, Any] = {"k": K}
    tags = catalog.modalities["tag"]
    assert isinstance(tags, SetTable)
    start, end = tags.indptr[row], tags.indptr[row + 1]
    top = {"tag_top1": 1, "tag_top3": 3, "audio+tag_top3": 3, "tag_all": end - start, "all": end - start}
    if kind in top:
        chosen = range(start, min(end, start + top[kind]))
        body["tag"] = {tags.vocab[tags.items[i]]: float(tags.weights[i]) for i in chosen}
    for name in ("audio", "cf"):
        if kind in (name, "all") or (name == "audio" and kind == "audio+tag_top3"):
            table = catalog.modalities[name]
            assert isinstance(table, VectorTable)
            body[name] = table.values[row].tolist()
    return body


def _scores(retrieved: npt.NDArray[np.int64], queries: npt.NDArray[np.int64], truth: EdgeTruth,
            indexed: npt.NDArray[np.int64], pop: npt.NDArray[np.float64]) -> dict[str, Any]:  # fmt: skip
    """nDCG@200 (mean, CI, per query) and the popularity of the results against the true neighbours'."""
    values = ndcg_at_k(truth.relevant(queries, retrieved), truth.n_relevant(queries, indexed), K)
    returned = np.where(retrieved >= 0, pop[np.maximum(retrieved, 0)], np.nan)
    neighbours = truth.adjacency[queries][:, indexed]
    true_pop = np.asarray(neighbours @ pop[indexed]).ravel() / np.maximum(np.asarray(neighbours.sum(axis=1)).ravel(), 1)
    return {
        "ndcg": float(values.mean()),
        "ndcg_ci": bootstrap_ci(values),
        "pop_returned": float(np.nanmean(returned)),
        "pop_true_neighbours": float(true_pop.mean()),
        "per_query": values,
    }


def run_cold_start(
    data: OlgaData, out_dir: Path, config: TrainConfig, n_queries: int = N_QUERIES, progress: bool = True
) -> dict[str, Any]:
    """Train and index without a sample of artists, then query them with partial inputs (see the module)."""
    from service.artifacts import Artifacts
    from service.batching import answer_batch
    from service.queries import query_inputs
    from service.schemas import SimilarQuery
    from service.settings import Settings

    catalog = data.catalog
    queries = sample_queries(data, n_queries, config.seed)
    reduced, _ = without(catalog, queries)
    work = Workdir(out_dir)
    write_catalog(work.catalog, reduced, overwrite=True)
    build_artifacts(work.catalog, work, config, progress=progress, overwrite=True)
    artifacts = Artifacts.load(Settings(model_dir=work.model, index_dir=work.index, search_threads=2))
    row_of = {a: int(r) for a, r in zip(catalog.artist_ids, np.arange(catalog.n_artists), strict=True)}
    indexed = np.asarray(sorted(row_of[a] for a in artifacts.index.row_of), dtype=np.int64)
    truth = EdgeTruth(data.edges, catalog.n_artists)
    pop = np.log1p(data.plays.astype(np.float64))
    results: dict[str, Any] = {}
    runs = [(kind, kind, True) for kind in INPUTS] + [(f"{k} (no prior)", k, False) for k in ABLATIONS]
    for name, kind, prior in runs:
        retrieved = np.full((len(queries), K), -1, dtype=np.int64)
        for begin in range(0, len(queries), BATCH):
            rows = queries[begin : begin + BATCH]
            inputs = [
                query_inputs(artifacts, SimilarQuery.model_validate(query_body(catalog, int(r), kind))) for r in rows
            ]  # type: ignore[attr-defined]
            for i, hits in enumerate(answer_batch(artifacts, inputs, [K] * len(rows), prior=prior)):
                if isinstance(hits, Exception):
                    continue  # an input the encoders overflow on: no result (counted as nDCG 0)
                retrieved[begin + i, : len(hits)] = [row_of[h.artist_id] for h in hits]
        results[name] = _scores(retrieved, queries, truth, indexed, pop)
    results |= _baselines(data, queries, indexed, truth, pop)
    ratio = {k: float(r["ndcg"] / max(results["all"]["ndcg"], 1e-12)) for k, r in results.items()}
    for r in results.values():
        r.pop("per_query")
    log.info(
        "cold start: %d queries; nDCG@200 %s",
        len(queries),
        ", ".join(f"{k} {r['ndcg']:.3f}" for k, r in results.items()),
    )
    return {
        "n_queries": len(queries),
        "n_indexed": len(indexed),
        "query_artists": catalog.artist_ids[queries].tolist(),
        "inputs": results,
        "ratio_to_all_inputs": ratio,
        "training": "the query artists are left out of training and of the index",
    }


def _baselines(data: OlgaData, queries: npt.NDArray[np.int64], indexed: npt.NDArray[np.int64], truth: EdgeTruth,
               pop: npt.NDArray[np.float64]) -> dict[str, Any]:  # fmt: skip
    """The raw tag embedding (top-3 and all tags) and popularity among the artists carrying the top-3 tags."""
    from evaluation.retrieval import top_k

    tags = data.catalog.modalities["tag"]
    assert isinstance(tags, SetTable)
    has_tags = indexed[tags.present[indexed]]
    out: dict[str, Any] = {}
    for name, count in (("baseline:raw_tag_top3", 3), ("baseline:raw_tag_all", None)):
        vectors = np.zeros((data.catalog.n_artists, tags.dim), dtype=np.float32)
        for q in queries:
            start, end = tags.indptr[q], tags.indptr[q + 1]
            end = end if count is None else min(end, start + count)
            w = tags.weights[start:end]
            vectors[q] = (tags.vocab_vectors[tags.items[start:end]] * w[:, None]).sum(axis=0) / max(w.sum(), 1e-12)
        both = tags.mean_vectors()  # every artist: the weighted mean of its tags' vectors
        both[queries] = vectors[queries]
        retrieved = top_k(both[queries], both[has_tags], has_tags, queries, K)
        out[name] = _scores(retrieved, queries, truth, indexed, pop)
    carriers = _carriers(tags, indexed)
    retrieved = np.full((len(queries), K), -1, dtype=np.int64)
    for i, q in enumerate(queries):
        items = tags.items[tags.indptr[q] : min(tags.indptr[q + 1], tags.indptr[q] + 3)]
        pool = np.unique(np.concatenate([carriers.get(int(t), np.zeros(0, np.int64)) for t in items]))
        best = pool[np.argsort(-pop[pool], kind="stable")][:K]
        retrieved[i, : len(best)] = best
    out["baseline:popularity_top3_tags"] = _scores(retrieved, queries, truth, indexed, pop)
    return out


def _carriers(tags: SetTable, indexed: npt.NDArray[np.int64]) -> dict[int, npt.NDArray[np.int64]]:
    """Tag item -> the indexed artists carrying it."""
    owners = np.repeat(np.arange(len(tags.indptr) - 1), np.diff(tags.indptr))
    ok = np.isin(owners, indexed)
    order = np.argsort(tags.items[ok], kind="stable")
    items, rows = tags.items[ok][order], owners[ok][order]
    cuts = np.flatnonzero(np.r_[True, items[1:] != items[:-1], True])
    return {int(items[s]): rows[s:e] for s, e in itertools.pairwise(cuts)}


INPUT_TEXT = {
    "tag_top1": "top-1 tag",
    "tag_top3": "top-3 tags",
    "tag_all": "all tags",
    "audio": "audio only",
    "cf": "CF only",
    "audio+tag_top3": "audio + top-3 tags",
    "all": "all inputs (audio, CF, all tags)",
    "tag_top3 (no prior)": "top-3 tags, without the popularity prior",
    "all (no prior)": "all inputs, without the popularity prior",
    "baseline:raw_tag_top3": "baseline: raw tag embedding, top-3 tags",
    "baseline:raw_tag_all": "baseline: raw tag embedding, all tags",
    "baseline:popularity_top3_tags": "baseline: most played artists carrying a top-3 tag",
}


def report_lines(cold: dict[str, Any]) -> list[str]:
    """The report's cold-start section: nDCG@200 per input with CIs, the ratio to all inputs, popularity."""
    if not cold:
        return []
    lines = [
        f"## Cold start ({cold['n_queries']} artists left out of training and the index, queried through "
        f"POST /similar's code; {cold['n_indexed']:,} indexed)",
        "",
        "| input | nDCG@200 [95% CI] | / all inputs | POP of results | POP of true neighbours |",
        "| --- | --- | --- | --- | --- |",
    ]
    for kind, r in cold["inputs"].items():
        lo, hi = r["ndcg_ci"]
        lines.append(
            f"| {INPUT_TEXT.get(kind, kind)} | {r['ndcg']:.3f} [{lo:.3f}, {hi:.3f}] | "
            f"{cold['ratio_to_all_inputs'][kind]:.2f} | {r['pop_returned']:.2f} | {r['pop_true_neighbours']:.2f} |"
        )
    goal = cold["ratio_to_all_inputs"].get("tag_top3", 0.0)
    lines += [
        "",
        f"Goal: top-3 tags at least 80% of all inputs; measured {goal:.0%} "
        f"({'met' if goal >= 0.8 else 'not met'}). POP = log(plays + 1).",
        "",
    ]
    return lines
