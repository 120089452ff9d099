"""The whole ranking of the served artists for one query, filtered, paged or reversed.

The plain similar answers come from the fast paths (`service.search`): precomputed lists and
candidate searches. A query with filters (`service.schemas.SimilarOptions`: modalities,
exclude, popularity bounds), an offset or the dissimilar order needs more than the top
candidates, so it ranks every served artist exactly, with the arithmetic of every other
ranking (`core.vectors.row_cosines`: the build's precomputed lists and the searches use it
too, so the paths agree to the last bit): cosine minus hub penalty (with a cold-start
query's popularity prior over the same pool as its plain answer), ties by row, built-index
artists before written ones. The filters keep a subset of that ranking and the page is a
slice of it, so each answer equals filtering the full list.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from core.balance import modality_mask
from core.vectors import FloatArray, row_cosines
from service import search
from service.artifacts import Artifacts
from service.live import Overlay
from service.schemas import SimilarOptions
from service.search import Hit, all_cosines, hits_of, ranks


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
    slot: int | None = None,
) -> Page:
    """Results offset..offset+k of the whole ranking of the served artists for a unit vector (D,).

    The ranking is the one the plain answers give, extended to every served artist (`ranks`:
    cosine by `core.vectors.row_cosines` minus hub penalty plus the modality balance's offsets
    for a query of balance `slot`, default neutral; ties by row, built-index artists before
    written ones). With a popularity `prior` (a cold-start query), as
    `service.search.search_many` ranks: the PRIOR_POOL best built-index artists by cosine minus
    penalty and the written ones with the prior (the query's own duplicates first), then the
    other built-index artists by cosine minus penalty. `order="dissimilar"` is the far end
    first (the same ranking from its last place; ties to the lower row). Then `exclude` (the
    queried artist) and `options.exclude` are left out, `options.modalities` keeps artists
    indexed with all of them, popularity bounds keep artists whose popularity is known and
    within them (compared in float64). Scores are cosines. O(N D + N log N) for N served
    artists; on a graph index every vector is reconstructed (exact where searches are not).
    """
    overlay = overlay or artifacts.overlay
    index = artifacts.index
    slot = index.balance.neutral if slot is None else slot
    penalty = index.penalties[slot]
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    cos = all_cosines(index, q)
    live_cos = row_cosines(overlay.vectors, q)

    served = overlay.served(len(index))
    served_live = np.ones(len(overlay.ids), dtype=bool)
    skip = index.row_of.get(exclude) if exclude is not None else None
    if skip is not None:
        served[skip] = False
    if exclude in overlay.row_of:
        served_live[overlay.row_of[exclude]] = False
    built = ranks(cos, penalty)
    tier = np.zeros(len(index), dtype=np.int64)  # 0: ranked first; 1: after every tier-0 artist
    live = ranks(live_cos, search.live_penalty(index, overlay, slot), np.zeros_like(live_cos) if prior > 0 else None)
    if prior > 0:  # the pool: the PRIOR_POOL best by cosine minus penalty, as search_many takes it
        eligible = np.flatnonzero(served)
        pool = eligible[np.argsort(-built[eligible], kind="stable")[: search.PRIOR_POOL]]
        built[pool] = ranks(cos[pool], penalty[pool], np.float32(prior) * index.popularity_prior[pool])
        tier[:] = 1
        tier[pool] = 0

    keep, keep_live = served, served_live
    for artist_id in options.exclude or []:
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
            popularity = index.popularity.astype(np.float64)
            low = -np.inf if options.min_popularity is None else options.min_popularity
            high = np.inf if options.max_popularity is None else options.max_popularity
            keep &= (popularity >= low) & (popularity <= high)

    rows, live_rows = np.flatnonzero(keep), np.flatnonzero(keep_live)
    rank = np.concatenate([built[rows], live[live_rows]])
    tiers = np.concatenate([tier[rows], np.zeros(len(live_rows), dtype=np.int64)])
    position = np.arange(len(rank))  # built rows ascending, then written ones: ties go to the earlier
    far = options.order == "dissimilar"  # the far end first: the last tier, the lowest rank; ties to the earlier
    order = np.lexsort((position, rank, -tiers)) if far else np.lexsort((position, -rank, tiers))
    page = order[options.offset : options.offset + k]
    return Page(hits_of(artifacts, overlay, page, rows, cos[rows], live_rows, live_cos[live_rows]), len(rank))
