"""The whole ranking of the served artists for one query, filtered, paged or reversed.

The plain similar answers come from the fast paths (`service.search`): precomputed lists and
candidate searches. A query with filters (`service.schemas.SimilarOptions`: modalities,
exclude, popularity bounds), an offset or the dissimilar order needs more than the top
candidates, so it ranks every served artist exactly: the cosine of each built-index artist
(`LoadedIndex.unit_vectors`, computed row by row as the fast path rescores) and of each
written one, minus its hub penalty (plus the popularity prior a cold-start query ranks
with), ties by row, built-index artists before written ones. The filters keep a subset of
that ranking and the page is a slice of it, so each answer equals filtering the full list.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from core.vectors import FloatArray
from inference.index import modality_mask
from service.artifacts import Artifacts
from service.live import Overlay
from service.schemas import SimilarOptions
from service.search import DUPLICATE_COSINE, DUPLICATE_RANK, Hit


class Page(NamedTuple):
    """One page of a filtered ranking, and how many served artists passed the filters."""

    hits: list[Hit]
    total: int


def ranked_page(
    artifacts: Artifacts,
    query: FloatArray,
    k: int,
    options: SimilarOptions,
    exclude: str | None = None,
    overlay: Overlay | None = None,
    prior: float = 0.0,
) -> Page:
    """Results offset..offset+k of the whole ranking of the served artists for a unit vector (D,).

    Ranked by cosine minus hub penalty (plus `prior` times the popularity prior, the query's
    own duplicates first, as `service.search.search_many` ranks a cold-start query), most
    similar first, or least similar first for `order="dissimilar"`; `exclude` (the queried
    artist) and `options.exclude` are never returned; `options.modalities` keeps artists
    indexed with all of them; popularity bounds keep artists whose popularity is known and
    within them. Scores are cosines. Linear in the number of served artists.
    """
    overlay = overlay or artifacts.overlay
    index = artifacts.index
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    cos = np.einsum("nd,d->n", index.unit_vectors, q)  # row by row, as the fast path rescores
    live_cos = np.einsum("nd,d->n", overlay.vectors, q)
    built = cos - index.penalty
    live = live_cos - overlay.penalty
    if prior > 0:
        built = np.where(
            cos >= DUPLICATE_COSINE, DUPLICATE_RANK + cos, built + np.float32(prior) * index.popularity_prior
        )
        live = np.where(live_cos >= DUPLICATE_COSINE, DUPLICATE_RANK + live_cos, live)

    keep = np.ones(len(index), dtype=bool)
    keep[overlay.hidden_rows] = False
    keep_live = np.ones(len(overlay.ids), dtype=bool)
    excluded = {exclude} if exclude is not None else set()
    excluded.update(options.exclude or [])
    for artist_id in excluded:
        if artist_id in index.row_of:
            keep[index.row_of[artist_id]] = False
        if artist_id in overlay.row_of:
            keep_live[overlay.row_of[artist_id]] = False
    if options.modalities:
        wanted = modality_mask(options.modalities)
        keep &= (index.modality_bits & wanted) == wanted
        keep_live &= np.array([(modality_mask(m) & wanted) == wanted for m in overlay.modalities], dtype=bool)
    if options.min_popularity is not None or options.max_popularity is not None:
        keep_live[:] = False  # a written artist's popularity is unknown
        if index.popularity is None:
            keep[:] = False
        else:
            low = -np.inf if options.min_popularity is None else options.min_popularity
            high = np.inf if options.max_popularity is None else options.max_popularity
            keep &= (index.popularity >= low) & (index.popularity <= high)

    rows, live_rows = np.flatnonzero(keep), np.flatnonzero(keep_live)
    rank = np.concatenate([built[rows], live[live_rows]])
    sign = -1 if options.order == "similar" else 1
    order = np.argsort(sign * rank, kind="stable")[options.offset : options.offset + k]
    n = len(rows)
    hits = []
    for j in order.tolist():
        if j < n:
            r = int(rows[j])
            hits.append(Hit(index.artist_ids[r], float(cos[r]), artifacts.answers.fragments[r]))
        else:
            w = int(live_rows[j - n])
            hits.append(Hit(overlay.ids[w], float(live_cos[w]), overlay.fragments[w]))
    return Page(hits, len(rank))
