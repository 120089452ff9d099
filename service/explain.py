"""Why two artists are similar: their modalities compared pair by pair, and the tags they share.

The served score is the cosine of two fused vectors, each the normalised weighted sum of an
artist's modality embeddings (`core.fusion`): its own, and for an artist known by a subset
the model completes (audio alone, by default), the predicted embeddings of the modalities it
lacks. Expanded over the modality pairs,

    cos(q, r) = sum over (u, v) of  a_u b_v cos(q_u, r_v),
    a_u = s_u / |sum_u' s_u' q_u'|,   b_v = s_v / |sum_v' s_v' r_v'|,

with s the modality's weight (times the completion weight for a predicted one), so each
pair's *contribution* a_u b_v cos(q_u, r_v) is its share of the score and the shares add up
to it (to the float16 rounding of the stored embeddings). The pair with the largest share is
the one that made the two artists close; a predicted modality is marked `completed`. Shared
tags are the tags both carry, ranked by the smaller of their two weights, each side's weights
scaled to its heaviest tag.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import orjson

from core.fusion import Fusion
from core.modalities import MODALITY_NAMES
from core.vectors import FloatArray
from service.artifacts import Artifacts
from service.live import Overlay
from service.search import Hit

SHARED_TAGS = 5  # shared tags listed per result


class Side(NamedTuple):
    """One artist as explanations see it: its unit embedding per modality, and its named items."""

    embeddings: dict[str, FloatArray]  # modality -> (D,): its own, and once `completed` the predicted ones
    items: dict[str, dict[str, float]]  # set modality -> item -> weight
    scales: dict[str, float] | None = None  # modality -> weight in the fused sum (set by `completed`)
    own_names: tuple[str, ...] | None = None  # the modalities it was given (None: all of `embeddings`)

    @property
    def own(self) -> tuple[str, ...]:
        """The modalities the artist has (not predicted)."""
        return tuple(self.embeddings) if self.own_names is None else self.own_names


def side_of(artifacts: Artifacts, artist_id: str, overlay: Overlay | None = None) -> Side | None:
    """A served artist's side, from the index's stored details or a written artist's (None if unknown)."""
    overlay = overlay or artifacts.overlay
    at = overlay.row_of.get(artist_id)
    if at is not None:
        detail = overlay.detail(at)
        return None if detail is None else Side(detail.embeddings, detail.items)
    row = artifacts.base_row(artist_id, overlay)
    details = artifacts.index.details
    if row is None or details is None:
        return None
    embeddings = {name: array[row].astype(np.float32) for name, array in details.embeddings.items() if array[row].any()}
    return Side(embeddings, {name: lists.of(row) for name, lists in details.items.items()})


def completed(side: Side, fusion: Fusion) -> Side:
    """The side with the terms its model's fusion adds for it (`core.fusion.Fusion.terms`): predicted
    embeddings of the modalities it lacks, and every term's scale in `Side.scales`."""
    embeddings, scales = fusion.terms(side.embeddings)
    return Side(embeddings, side.items, scales, tuple(_ordered(side.embeddings)))


def explanation(query: Side, result: Side) -> dict[str, Any]:
    """Why `result` is near `query` (both `completed`): every modality pair's cosine and contribution,
    the strongest pair, and up to SHARED_TAGS shared tags."""
    a, b = _coefficients(query), _coefficients(result)
    pairs: list[dict[str, Any]] = []
    for u in _ordered(query.embeddings):
        for v in _ordered(result.embeddings):
            cosine = float(np.dot(query.embeddings[u].astype(np.float64), result.embeddings[v].astype(np.float64)))
            pair = {
                "query_modality": u,
                "result_modality": v,
                "cosine": round(cosine, 4),
                "contribution": round(a[u] * b[v] * cosine, 4),
            }
            own_u, own_v = u in query.own, v in result.own
            if not (own_u and own_v):
                pair["completed"] = [side for side, own in (("query", own_u), ("result", own_v)) if not own]
            pairs.append(pair)
    pairs.sort(key=lambda p: -float(p["contribution"]))
    strongest = {k: pairs[0][k] for k in ("query_modality", "result_modality")} if pairs else None
    return {"pairs": pairs, "strongest": strongest, "shared_tags": shared_tags(query.items, result.items)}


def shared_tags(query: dict[str, dict[str, float]], result: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """The items both sides carry, by the smaller of their scaled weights (each side's heaviest = 1), then name."""
    found: list[dict[str, Any]] = []
    for name, mine in query.items():
        theirs = result.get(name, {})
        both = mine.keys() & theirs.keys()
        if not both:
            continue
        top_mine, top_theirs = max(mine.values()), max(theirs.values())
        for tag in both:
            strength = min(mine[tag] / top_mine, theirs[tag] / top_theirs)
            found.append({"tag": tag, "modality": name, "weight": round(strength, 4)})
    found.sort(key=lambda t: (-float(t["weight"]), str(t["tag"])))
    return found[:SHARED_TAGS]


def explained_results(artifacts: Artifacts, query: Side | None, hits: list[Hit], overlay: Overlay) -> list[Any]:
    """Each hit as a result object with its `explanation` (null when either side's details are unknown:
    an index built before explanations were stored)."""
    fusion = artifacts.model.fusion
    asked = None if query is None else completed(query, fusion)
    results = []
    for hit in hits:
        result = side_of(artifacts, hit.artist_id, overlay)
        item: dict[str, Any] = orjson.loads(hit.fragment + b"}")
        item["score"] = np.float32(hit.score)  # written as float32's shortest form, as plain answers are
        item["explanation"] = None if asked is None or result is None else explanation(asked, completed(result, fusion))
        results.append(item)
    return results


def _ordered(embeddings: dict[str, FloatArray]) -> list[str]:
    return [n for n in MODALITY_NAMES if n in embeddings]


def _coefficients(side: Side) -> dict[str, float]:
    """a_u = s_u / |sum s q| for each modality of one side (see the module's docstring)."""
    if not side.embeddings:
        return {}
    scales = side.scales or {}
    total = sum(scales.get(n, 1.0) * e.astype(np.float64) for n, e in side.embeddings.items())
    norm = float(np.linalg.norm(total)) or 1.0
    return {n: scales.get(n, 1.0) / norm for n in side.embeddings}
