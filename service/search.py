"""Searching the served artists: the built index and the written artists merged, ranked as the index ranks.

Every function reads one snapshot of the writes (`overlay`, default the current one), so a
request that passes its snapshot along answers from one consistent state.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from core.search import RESCORE_MARGIN
from core.vectors import FloatArray, row_cosines
from inference.index import LoadedIndex, vectors_of
from service.artifacts import Artifacts
from service.live import Overlay
from service.names import score_key
from service.responses import scored_items
from service.settings import MAX_K


class Hit(NamedTuple):
    """One result: an artist's JSON fragment (see `service.live.fragment`), id and cosine to the query."""

    artist_id: str
    score: float
    fragment: bytes


def search(
    artifacts: Artifacts,
    query: FloatArray,
    k: int,
    exclude: str | None = None,
    overlay: Overlay | None = None,
    slot: int | None = None,
) -> list[Hit]:
    """The k nearest served artists to a unit vector (D,), leaving out artist `exclude`.

    Ranked, as the index ranks, by cosine minus the candidate's hub penalty plus the modality
    balance's offset for a query of balance `slot` (`LoadedIndex.slot_of`; default neutral);
    scores are cosines. One query of `search_many`.
    """
    q = np.asarray(query, dtype=np.float32).reshape(1, -1)
    return search_many(artifacts, q, [k], [exclude], overlay, slots=None if slot is None else [slot])[0]


def live_penalty(index: LoadedIndex, overlay: Overlay, slot: int) -> FloatArray:
    """(A,) what a query of balance `slot` subtracts from the written artists' cosines: their hub
    penalty less the balance's offset for their modalities (`LoadedIndex.penalties` for built ones)."""
    if not index.balance.subsets:
        return overlay.penalty
    return index.balance.penalties(overlay.penalty, index.balance.slots(overlay.bits), slot)


# A cold-start query's popularity prior re-ranks its PRIOR_POOL best candidates by cosine minus
# penalty (at least MAX_K: the pool never depends on k or on the page, so every answer and page
# is a slice of one ranking); the others follow them.
PRIOR_POOL = max(1000, MAX_K)
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
    slots: list[int] | None = None,
) -> list[list[Hit]]:
    """The ks[b] nearest served artists to each unit vector queries[b] (B, D), in one index search.

    `slots[b]` is query b's slot in the modality balance (`LoadedIndex.slot_of` of its
    modalities; default the neutral slot): its ranking adds the balance's offsets for it.

    The index search (one matrix product for all queries) only proposes candidates: each
    query's are rescored with float32 dot products computed one candidate at a time (einsum;
    BLAS picks kernels by the matrix's size, which would make the last bit depend on the batch
    and on the candidates around) and ranked by (cosine minus hub penalty, row), so an answer
    is the same to the last bit whatever else was in the batch. RESCORE_MARGIN extra
    candidates let the rescored values, not the batch's rounding, decide the last places.

    `priors[b]` > 0 adds that weight times the candidate's popularity prior
    (`inference.index.Index.popularity_prior`; 0 for written artists) to query b's ranking,
    among its PRIOR_POOL best built-index candidates by cosine minus penalty (and every
    written artist); scores stay cosines. Candidates are rescored one by one
    (`core.vectors.row_cosines`); when a tie at the cut may reach past the fetched ones (an
    exact index only), every served artist is rescored.
    """
    overlay = overlay or artifacts.overlay
    q = np.ascontiguousarray(queries, dtype=np.float32).reshape(len(ks), -1)
    excludes = excludes or [None] * len(ks)
    priors = priors or [0.0] * len(ks)
    index = artifacts.index
    slots = slots or [index.balance.neutral] * len(ks)
    extra = len(overlay.hidden) + 1 + RESCORE_MARGIN
    # What each query alone would fetch; it ranks only those, so its answer does not depend on the batch.
    fetch = [(PRIOR_POOL if w > 0 else k) + extra for k, w in zip(ks, priors, strict=True)]
    _, candidates = index.search(q, min(len(index), max(fetch, default=extra)), np.asarray(slots, dtype=np.int64))
    answers = []
    for b, (k, exclude, weight, slot) in enumerate(zip(ks, excludes, priors, slots, strict=True)):
        penalty = index.penalties[slot]
        found = candidates[b][candidates[b] >= 0][: fetch[b]]
        rows = np.sort(found)  # by row, so that ties rank by row
        if overlay.hidden:
            rows = rows[~np.isin(rows, overlay.hidden_rows)]
        skip = artifacts.index.row_of.get(exclude) if exclude is not None else None
        if skip is not None:
            rows = rows[rows != skip]
        cosines = row_cosines(vectors_of(artifacts.index, rows), q[b])
        need = PRIOR_POOL if weight > 0 else k
        if found.size == fetch[b] < len(index) and _tie_at_cut(cosines - penalty[rows], need):
            rows, cosines = _all_rows(artifacts, q[b], overlay, skip)  # a tie at the cut may reach past the fetch
        if weight > 0:  # the prior re-ranks the pool: the PRIOR_POOL best by cosine minus penalty
            pool = np.sort(np.argsort(-(cosines - penalty[rows]), kind="stable")[:PRIOR_POOL])
            rows, cosines = rows[pool], cosines[pool]
        live_cos = row_cosines(overlay.vectors, q[b])
        if exclude in overlay.row_of:
            live_cos[overlay.row_of[exclude]] = -np.inf
        answers.append(_merge(artifacts, rows, cosines, live_cos, overlay, k, weight, slot))
    return answers


def _tie_at_cut(ranked: FloatArray, need: int) -> bool:
    """Whether the fetched candidates' last rank equals the need-th best: a tie that may go on past them."""
    return bool(ranked.size > need and ranked.min() >= np.partition(ranked, ranked.size - need)[ranked.size - need])


def _all_rows(artifacts: Artifacts, q: FloatArray, overlay: Overlay, skip: int | None) -> tuple[np.ndarray, FloatArray]:
    """Every served built-index row (but `skip`) and its cosine to q (D,): the exact fallback of a search."""
    served = overlay.served(len(artifacts.index))
    if skip is not None:
        served[skip] = False
    rows = np.flatnonzero(served)
    return rows, all_cosines(artifacts.index, q, rows)


def all_cosines(index: LoadedIndex, q: FloatArray, rows: np.ndarray | None = None, chunk: int = 16_384) -> FloatArray:
    """Cosines (len(rows),) of index rows (default all) to a unit query (D,), a chunk of vectors copied at a time."""
    rows = np.arange(len(index)) if rows is None else rows
    parts = [row_cosines(vectors_of(index, rows[i : i + chunk]), q) for i in range(0, len(rows), chunk)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def ranks(cos: FloatArray, penalty: FloatArray, prior_term: FloatArray | None = None) -> FloatArray:
    """How the served artists rank for a query: cosine minus hub penalty; with a popularity prior (the
    prior's weight times the candidate's prior, 0 for written artists), that added, and the query's
    own duplicates (cosine >= DUPLICATE_COSINE) first by cosine."""
    rank = cos - penalty
    if prior_term is None:
        return rank
    return np.where(cos >= DUPLICATE_COSINE, DUPLICATE_RANK + cos, rank + prior_term)


def hits_of(
    artifacts: Artifacts, overlay: Overlay, order: np.ndarray, rows: np.ndarray, cos: FloatArray, live: np.ndarray,
    live_cos: FloatArray,
) -> list[Hit]:  # fmt: skip
    """Hits for positions `order` of a ranking of built-index `rows` (cosines `cos`) followed by written
    artists `live` (their overlay positions; cosines `live_cos`)."""
    n = len(rows)
    hits = []
    for j in order.tolist():
        if j < n:
            r = int(rows[j])
            hits.append(Hit(artifacts.index.artist_ids[r], float(cos[j]), artifacts.answers.fragments[r]))
        else:
            w = int(live[j - n])
            hits.append(Hit(overlay.ids[w], float(live_cos[j - n]), overlay.fragments[w]))
    return hits


def _merge(
    artifacts: Artifacts,
    rows: np.ndarray,
    cos: FloatArray,
    live_cos: FloatArray,
    overlay: Overlay,
    k: int,
    prior: float = 0.0,
    slot: int = 0,
) -> list[Hit]:
    """The top k of built-index candidates (rows, cosines) and every written artist (cosines).

    Both ranked as the index ranks (`ranks`) for a query of balance `slot`, with `prior` times
    the popularity prior of built-index rows when `prior` > 0; -inf cosines are left out.
    """
    with_prior = prior > 0
    index = artifacts.index
    built = ranks(cos, index.penalties[slot][rows], np.float32(prior) * index.popularity_prior[rows]
                  if with_prior else None)  # fmt: skip
    live = ranks(live_cos, live_penalty(index, overlay, slot), np.zeros_like(live_cos) if with_prior else None)
    rank = np.concatenate([built, live])
    order = np.argsort(-rank, kind="stable")[:k]
    order = order[np.isfinite(rank[order])]
    return hits_of(artifacts, overlay, order, rows, cos, np.arange(len(overlay.ids)), live_cos)


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
        artifacts,
        rows[keep].astype(np.int64),
        artifacts.index.neighbour_scores[row][keep],
        live_cos,
        overlay,
        k,
        slot=int(artifacts.index.slots[row]),
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
    slot = artifacts.slot_of(artist_id, overlay)
    return hits_json(search(artifacts, vector, k, exclude=artist_id, overlay=overlay, slot=slot))


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
