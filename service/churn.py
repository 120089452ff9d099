"""How much a swap changes the similar lists: NN-similarity between the served and the new artifacts.

Over a sample of artists served by both (deterministic: the same sample for the same ids),
each artist's 10 and 200 most similar artists are searched in both, and S_n = |L_old,n ∩
L_new,n| / n is averaged (Tovstogan et al. 2022; `evaluation.nn_similarity` is the offline
measure, `cmar compare` on two index folders). Also the artists whose lists change most.
"""

from __future__ import annotations

import numpy as np

from service.artifacts import Artifacts
from service.schemas import Churn, ChurnedArtist
from service.search import search_many

SAMPLE = 1000  # artists compared (all of them when fewer are served by both)
CUTOFFS = (10, 200)
BATCH = 256


def _lists(artifacts: Artifacts, ids: list[str], k: int) -> list[list[str]]:
    out: list[list[str]] = []
    for begin in range(0, len(ids), BATCH):
        part = ids[begin : begin + BATCH]
        vectors = [artifacts.vector_of(a) for a in part]  # every sampled artist is served: none is None
        slots = [artifacts.slot_of(a) for a in part]
        hits = search_many(artifacts, np.stack(vectors), [k] * len(part), list(part), slots=slots)  # type: ignore[arg-type]
        out += [[h.artist_id for h in found] for found in hits]
    return out


def churn(old: Artifacts, new: Artifacts, sample: int = SAMPLE, seed: int = 0) -> Churn:
    """S_10 and S_200 between the lists `old` and `new` give a sample of the artists both serve."""
    both = sorted(set(_served(old)) & set(_served(new)))
    picked = [both[i] for i in sorted(np.random.default_rng(seed).permutation(len(both))[:sample].tolist())]
    k = min(max(CUTOFFS), max(len(old), len(new)) - 1)
    if not picked or k < 1:
        return Churn(sampled=0, s10=None, s200=None, most_changed=[])
    before, after = _lists(old, picked, k), _lists(new, picked, k)
    per: dict[int, list[float]] = {}
    for n in CUTOFFS:
        cut = min(n, k)
        per[n] = [len(set(a[:cut]) & set(b[:cut])) / cut for a, b in zip(before, after, strict=True)]
    order = sorted(range(len(picked)), key=lambda i: (per[10][i], per[200][i], picked[i]))[:10]
    return Churn(
        sampled=len(picked),
        s10=round(float(np.mean(per[10])), 4),
        s200=round(float(np.mean(per[200])), 4),
        most_changed=[ChurnedArtist(artist_id=picked[i], s10=per[10][i], s200=per[200][i]) for i in order],
    )


def _served(artifacts: Artifacts) -> list[str]:
    overlay = artifacts.overlay
    base = [a for r, a in enumerate(artifacts.index.artist_ids) if r not in overlay.hidden]
    return [*base, *overlay.ids]
