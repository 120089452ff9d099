"""Searching the served artists: the built index and the written artists merged, ranked as the index ranks.

Every function reads one snapshot of the writes (`overlay`, default the current one), so a
request that passes its snapshot along answers from one consistent state.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from core.vectors import FloatArray, row_cosines
from inference.index import vectors_of
from service.artifacts import Artifacts
from service.live import Overlay
from service.names import score_key
from service.responses import scored_items


class Hit(NamedTuple):
    """One result: an artist's JSON fragment (see `service.live.fragment`), id and cosine to the query."""

    artist_id: str
    score: float
    fragment: bytes


def search(
    artifacts: Artifacts, query: FloatArray, k: int, exclude: str | None = None, overlay: Overlay | None = None
) -> list[Hit]:
    """The k nearest served artists to a unit vector (D,), leaving out artist `exclude`.

    Ranked, as the index ranks, by cosine minus the candidate's hub penalty; scores are cosines.
    One query of `search_many`.
    """
    return search_many(artifacts, np.asarray(query, dtype=np.float32).reshape(1, -1), [k], [exclude], overlay)[0]


RESCORE_MARGIN = 8  # candidates fetched beyond k, so that rescoring decides the last places
PRIOR_POOL = 1000  # candidates a query with a popularity prior is re-ranked among (at least 5 k)
# Weight of the popularity prior (a z-score of log(1 + popularity)) in the ranking of a cold-start
# query: CF embeddings already carry popularity; a few tags or audio do not, and their answers come
# out far less popular than the true neighbours. Chosen on half of the OLGA cold-start queries,
# checked on the other half (README, Cold start).
PRIOR_WEIGHT_WITH_CF = 0.03
PRIOR_WEIGHT_THIN = 0.10  # no CF, and at most THIN_TAGS tags (audio alone included)
PRIOR_WEIGHT_TAGS = 0.04  # no CF, more tags
THIN_TAGS = 3
DUPLICATE_COSINE = 0.9999  # at least this close to the query, an artist is the query's own duplicate: first
DUPLICATE_RANK = 100.0  # added to a duplicate's rank, above any cosine plus prior


def prior_weight(modalities: list[str], n_tags: int) -> float:
    """The popularity prior's weight for a cold-start query encoded from `modalities`, with `n_tags` tags."""
    if "cf" in modalities:
        return PRIOR_WEIGHT_WITH_CF
    return PRIOR_WEIGHT_THIN if n_tags <= THIN_TAGS else PRIOR_WEIGHT_TAGS


def search_many(
    artifacts: Artifacts,
    queries: FloatArray,
    ks: list[int],
    excludes: list[str | None] | None = None,
    overlay: Overlay | None = None,
    priors: list[float] | None = None,
) -> list[list[Hit]]:
    """The ks[b] nearest served artists to each unit vector queries[b] (B, D), in one index search.

    The index search (one matrix product for all queries) only proposes candidates: each
    query's are rescored with float32 dot products computed one candidate at a time (einsum;
    BLAS picks kernels by the matrix's size, which would make the last bit depend on the batch
    and on the candidates around) and ranked by (cosine minus hub penalty, row), so an answer
    is the same to the last bit whatever else was in the batch. RESCORE_MARGIN extra
    candidates let the rescored values, not the batch's rounding, decide the last places.

    `priors[b]` > 0 adds that weight times the candidate's popularity prior
    (`inference.index.Index.popularity_prior`; 0 for written artists) to query b's ranking,
    among its `prior_pool(k)` best built-index candidates by cosine minus penalty (and every
    written artist); scores stay cosines.
    """
    overlay = overlay or artifacts.overlay
    q = np.ascontiguousarray(queries, dtype=np.float32).reshape(len(ks), -1)
    excludes = excludes or [None] * len(ks)
    priors = priors or [0.0] * len(ks)
    extra = len(overlay.hidden) + 1 + RESCORE_MARGIN
    # What each query alone would fetch; it ranks only those, so its answer does not depend on the batch.
    fetch = [(prior_pool(k) if w > 0 else k) + extra for k, w in zip(ks, priors, strict=True)]
    _, candidates = artifacts.index.search(q, min(len(artifacts.index), max(fetch, default=extra)))
    answers = []
    for b, (k, exclude, weight) in enumerate(zip(ks, excludes, priors, strict=True)):
        found = candidates[b][candidates[b] >= 0][: fetch[b]]
        rows = np.sort(found)  # by row, so that ties rank by row
        if overlay.hidden:
            rows = rows[~np.isin(rows, overlay.hidden_rows)]
        skip = artifacts.index.row_of.get(exclude) if exclude is not None else None
        if skip is not None:
            rows = rows[rows != skip]
        cosines = row_cosines(vectors_of(artifacts.index, rows), q[b])
        if weight > 0:  # the prior re-ranks the pool: the best prior_pool(k) by cosine minus penalty
            pool = np.sort(np.argsort(-(cosines - artifacts.index.penalty[rows]), kind="stable")[: prior_pool(k)])
            rows, cosines = rows[pool], cosines[pool]
        live_cos = row_cosines(overlay.vectors, q[b])
        if exclude in overlay.row_of:
            live_cos[overlay.row_of[exclude]] = -np.inf
        answers.append(_merge(artifacts, rows, cosines, live_cos, overlay, k, weight))
    return answers


def prior_pool(k: int) -> int:
    """How many of a cold-start query's best candidates (cosine minus penalty) its popularity prior re-ranks."""
    return max(5 * k, PRIOR_POOL)


def _merge(
    artifacts: Artifacts,
    rows: np.ndarray,
    cos: FloatArray,
    live_cos: FloatArray,
    overlay: Overlay,
    k: int,
    prior: float = 0.0,
) -> list[Hit]:
    """The top k of built-index candidates (rows, cosines) and every written artist (cosines).

    Both ranked as the index ranks, by cosine minus hub penalty (plus `prior` times the
    popularity prior of built-index rows); -inf cosines are left out.
    """
    built = cos - artifacts.index.penalty[rows]
    live = live_cos - overlay.penalty
    if prior > 0:  # duplicates of the query (an artist posted with its own inputs) stay first, by cosine
        built = np.where(
            cos >= DUPLICATE_COSINE,
            DUPLICATE_RANK + cos,
            built + np.float32(prior) * artifacts.index.popularity_prior[rows],
        )
        live = np.where(live_cos >= DUPLICATE_COSINE, DUPLICATE_RANK + live_cos, live)
    rank = np.concatenate([built, live])
    order = np.argsort(-rank, kind="stable")[:k]
    n = len(rows)
    hits = []
    for j in order[np.isfinite(rank[order])].tolist():
        if j < n:
            r = int(rows[j])
            hits.append(Hit(artifacts.index.artist_ids[r], float(cos[j]), artifacts.answers.fragments[r]))
        else:
            hits.append(Hit(overlay.ids[j - n], float(live_cos[j - n]), overlay.fragments[j - n]))
    return hits


def quick_similar_json(artifacts: Artifacts, artist_id: str, k: int, overlay: Overlay | None = None) -> bytes | None:
    """`similar_json` without a search, or None when one is needed.

    For a built-index artist and k within its precomputed list: a slice of the list while
    nothing is written; else the list without the hidden rows, merged with the written
    artists. That is exact: a built-index artist missing from the list ranks below all of
    it, so while k entries remain the top k is among them and the written artists.
    """
    overlay = overlay or artifacts.overlay
    if not artifacts.precomputed(k):
        return None
    row = artifacts.base_row(artist_id, overlay)
    if row is None:
        return None
    if overlay.empty:
        return artifacts.answers.precomputed(row, k)
    assert artifacts.index.neighbours is not None and artifacts.index.neighbour_scores is not None
    rows = artifacts.index.neighbours[row]
    keep = ~np.isin(rows, overlay.hidden_rows)
    if keep.sum() < k:
        return None
    live_cos = row_cosines(overlay.vectors, vectors_of(artifacts.index, np.array([row]))[0])
    merged = _merge(
        artifacts, rows[keep].astype(np.int64), artifacts.index.neighbour_scores[row][keep], live_cos, overlay, k
    )
    return hits_json(merged)


def similar_json(artifacts: Artifacts, artist_id: str, k: int, overlay: Overlay | None = None) -> bytes | None:
    """The JSON results array of the k artists most similar to a served artist (None if not served).

    Read from one snapshot of the writes (`overlay`, default the current one). From the
    precomputed lists when they suffice (`quick_similar_json`); a search otherwise.
    """
    overlay = overlay or artifacts.overlay
    quick = quick_similar_json(artifacts, artist_id, k, overlay)
    return quick if quick is not None else searched_json(artifacts, artist_id, k, overlay)


def searched_json(artifacts: Artifacts, artist_id: str, k: int, overlay: Overlay | None = None) -> bytes | None:
    """`similar_json` by a search, whatever the precomputed lists hold (None if the artist is not served)."""
    overlay = overlay or artifacts.overlay
    vector = artifacts.vector_of(artist_id, overlay)
    if vector is None:
        return None
    return hits_json(search(artifacts, vector, k, exclude=artist_id, overlay=overlay))


def hits_json(hits: list[Hit]) -> bytes:
    """The JSON results array of hits: each artist's fragment with its score."""
    items = scored_items([h.fragment for h in hits], np.array([h.score for h in hits], dtype=np.float32))
    return b"[" + b",".join(items) + b"]"


def find_by_name(
    artifacts: Artifacts, query: str, limit: int, overlay: Overlay | None = None
) -> list[dict[str, object]]:
    """The served artists whose names match a query's search form (`service.names`), best first, at most `limit`.

    Built-index artists and written ones alike, from one snapshot of the writes; each result
    has its id, name, modalities, popularity (None when the catalogue gave none) and score
    (100 an exact match, 97 a prefix to a word's end, 95 a prefix, 90 a word's prefix, 75 to
    89 a fuzzy match). Ranked by score, then popularity, then search form and id: the built
    index's matches are ranked with numpy, so only the best `limit` become Python objects.
    """
    overlay = overlay or artifacts.overlay
    index, names = artifacts.index, artifacts.names.get()
    rows, scores = names.match(query, limit, skip=overlay.hidden)
    popularity = np.zeros(rows.size) if index.popularity is None else index.popularity[rows].astype(np.float64)
    best = np.lexsort((names.alphabetical[rows], -popularity, -scores))[:limit]
    ranked: list[tuple[float, float, str, str, dict[str, object]]] = []
    for j in best.tolist():
        row = int(rows[j])
        result: dict[str, object] = {
            "artist_id": index.artist_ids[row],
            "name": index.names[row],
            "modalities": index.modalities[row],
            "popularity": None if index.popularity is None else float(popularity[j]),
            "score": float(scores[j]),
        }
        ranked.append((-float(scores[j]), -float(popularity[j]), names.keys[row], index.artist_ids[row], result))
    for j, key in enumerate(overlay.search_keys):
        matched = score_key(query, key)
        if matched is not None:
            written: dict[str, object] = {
                "artist_id": overlay.ids[j],
                "name": overlay.names[j],
                "modalities": list(overlay.modalities[j]),
                "popularity": None,
                "score": matched,
            }
            ranked.append((-matched, 0.0, key, overlay.ids[j], written))
    ranked.sort(key=lambda r: r[:4])
    return [r[4] for r in ranked[:limit]]
