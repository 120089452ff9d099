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

from core.vectors import FloatArray, row_cosines
from inference.index import modality_mask, vectors_of
from service.artifacts import Artifacts
from service.live import Overlay
from service.schemas import SimilarOptions
from service.search import DUPLICATE_COSINE, DUPLICATE_RANK, Hit, prior_pool


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

    The ranking is the one the plain answers give, extended to every served artist: cosine
    (`core.vectors.row_cosines`) minus hub penalty, ties by row, built-index artists before
    written ones. With a popularity `prior` (a cold-start query), as `service.search.search_many`
    ranks: the `prior_pool(offset + k)` best built-index artists by cosine minus penalty and
    the written ones are ranked with the prior (the query's own duplicates first), and the
    other built-index artists follow them by cosine minus penalty. `order="dissimilar"` is
    that ranking reversed. Then `exclude` (the queried artist) and `options.exclude` are left
    out, `options.modalities` keeps artists indexed with all of them, popularity bounds keep
    artists whose popularity is known and within them (compared in float64). Scores are
    cosines. Linear in the number of served artists.
    """
    overlay = overlay or artifacts.overlay
    index = artifacts.index
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    cos = np.concatenate(
        [row_cosines(vectors_of(index, part), q) for part in np.array_split(np.arange(len(index)), _chunks(len(index)))]
    )
    live_cos = row_cosines(overlay.vectors, q)
    built = cos - index.penalty
    live = live_cos - overlay.penalty

    served = np.ones(len(index), dtype=bool)
    served[overlay.hidden_rows] = False
    served_live = np.ones(len(overlay.ids), dtype=bool)
    skip = index.row_of.get(exclude) if exclude is not None else None
    if skip is not None:
        served[skip] = False
    if exclude in overlay.row_of:
        served_live[overlay.row_of[exclude]] = False
    tier = np.zeros(len(index), dtype=np.int64)  # 0: ranked first; 1: after every tier-0 artist
    if prior > 0:
        eligible = np.flatnonzero(served)
        pool = eligible[np.argsort(-built[eligible], kind="stable")[: prior_pool(options.offset + k)]]
        in_pool = np.zeros(len(index), dtype=bool)
        in_pool[pool] = True
        tier[~in_pool] = 1
        built = np.where(
            in_pool & (cos >= DUPLICATE_COSINE),
            DUPLICATE_RANK + cos,
            np.where(in_pool, built + np.float32(prior) * index.popularity_prior, built),
        )
        live = np.where(live_cos >= DUPLICATE_COSINE, DUPLICATE_RANK + live_cos, live)

    keep, keep_live = served.copy(), served_live.copy()
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
    position = np.arange(len(rank))  # built rows ascending, then written ones: the tie order
    order = np.lexsort((position, -rank, tiers))  # tier, then rank descending, then position
    if options.order == "dissimilar":
        order = order[::-1]
    page = order[options.offset : options.offset + k]
    n = len(rows)
    hits = []
    for j in page.tolist():
        if j < n:
            r = int(rows[j])
            hits.append(Hit(index.artist_ids[r], float(cos[r]), artifacts.answers.fragments[r]))
        else:
            w = int(live_rows[j - n])
            hits.append(Hit(overlay.ids[w], float(live_cos[w]), overlay.fragments[w]))
    return Page(hits, len(rank))


CHUNK = 16_384  # rows whose vectors are copied at a time


def _chunks(n: int) -> int:
    return max(1, -(-n // CHUNK))
