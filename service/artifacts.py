"""The artifacts the service answers from: a model and an index built with it, and the queries on them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from core.errors import CmarError
from core.modalities import ModalityKind
from core.vectors import FloatArray, hub_penalty, item_weights
from inference.encoder import OnnxModel
from inference.index import LoadedIndex, load_index, vectors_of
from service.live import Overlay
from service.responses import Answers, scored_items
from service.settings import Settings

log = logging.getLogger(__name__)

MODEL_HEADER = "X-Model-Version"
INDEX_HEADER = "X-Index-Version"


@dataclass(frozen=True)
class Hit:
    """One result: an artist's JSON fragment (see `service.live.fragment`), id and cosine to the query."""

    artist_id: str
    score: float
    fragment: bytes


class Artifacts:
    """A verified model and index pair, and the live writes laid over the index."""

    def __init__(self, model: OnnxModel, index: LoadedIndex) -> None:
        self.model = model
        self.index = index
        self.answers = Answers(index)
        self.overlay = Overlay(dim=index.manifest.embedding_dim)  # replaced whole by every write
        self.version_headers = [
            (MODEL_HEADER.lower().encode(), model.version.encode()),
            (INDEX_HEADER.lower().encode(), index.version.encode()),
        ]

    @classmethod
    def load(cls, settings: Settings) -> Artifacts:
        """Load and verify both folders; raise CmarError naming what did not match.

        Also limits the process's BLAS and OpenMP threads to `search_threads`: a single query
        gains nothing from more, and idle BLAS threads spin on the cores the server needs.
        """
        threadpool_limits(settings.search_threads)
        faiss.omp_set_num_threads(settings.search_threads)
        model = OnnxModel(settings.model_dir, verify=settings.verify_hashes, threads=settings.onnx_threads)
        index = load_index(settings.index_dir, model=model.manifest, verify=settings.verify_hashes)
        log.info("serving model %s with index %s (%d artists)", model.version, index.version, len(index))
        return cls(model, index)

    # Reading: the built index and the overlay together.

    def base_row(self, artist_id: str, overlay: Overlay | None = None) -> int | None:
        """The built-index row of an artist that is served from it (None if written over or absent)."""
        row = self.index.row_of.get(artist_id)
        return None if row is None or row in (overlay or self.overlay).hidden else row

    def artist(self, artist_id: str, overlay: Overlay | None = None) -> tuple[str, list[str]] | None:
        """An artist's name and modalities in one snapshot of the writes (default: the current), or None."""
        overlay = overlay or self.overlay
        at = overlay.row_of.get(artist_id)
        if at is not None:
            return overlay.names[at], list(overlay.modalities[at])
        row = self.base_row(artist_id, overlay)
        return None if row is None else (self.index.names[row], self.index.modalities[row])

    def __len__(self) -> int:
        overlay = self.overlay
        return len(self.index) - len(overlay.hidden) + len(overlay.ids)

    def search(
        self, query: FloatArray, k: int, exclude: str | None = None, overlay: Overlay | None = None
    ) -> list[Hit]:
        """The k nearest served artists to a unit vector, leaving out artist `exclude`.

        Ranked, as the index ranks, by cosine minus the candidate's hub penalty; scores are cosines.
        """
        overlay = overlay or self.overlay
        q = np.asarray(query, dtype=np.float32).reshape(1, -1)
        wanted = min(len(self.index), k + len(overlay.hidden) + 1)
        cosines, rows = self.index.search(q, wanted)
        keep = [
            j
            for j, r in enumerate(rows[0].tolist())
            if r >= 0 and r not in overlay.hidden and self.index.artist_ids[r] != exclude
        ]
        base_rows = rows[0][keep].astype(np.int64)
        live_cos = overlay.vectors @ q[0]
        if exclude in overlay.row_of:
            live_cos[overlay.row_of[exclude]] = -np.inf
        return self._merge(base_rows, cosines[0][keep], live_cos, overlay, k)

    def _merge(self, rows: np.ndarray, cos: FloatArray, live_cos: FloatArray, overlay: Overlay, k: int) -> list[Hit]:
        """The top k of built-index candidates (rows, cosines) and every written artist (cosines).

        Both ranked as the index ranks, by cosine minus hub penalty; -inf cosines are left out.
        """
        rank = np.concatenate([cos - self.index.penalty[rows], live_cos - overlay.penalty])
        order = np.argsort(-rank, kind="stable")[:k]
        n = len(rows)
        hits = []
        for j in order[np.isfinite(rank[order])].tolist():
            if j < n:
                r = int(rows[j])
                hits.append(Hit(self.index.artist_ids[r], float(cos[j]), self.answers.fragments[r]))
            else:
                hits.append(Hit(overlay.ids[j - n], float(live_cos[j - n]), overlay.fragments[j - n]))
        return hits

    def vector_of(self, artist_id: str, overlay: Overlay | None = None) -> FloatArray | None:
        """A served artist's fused unit vector, or None."""
        overlay = overlay or self.overlay
        at = overlay.row_of.get(artist_id)
        if at is not None:
            return overlay.vectors[at]
        row = self.base_row(artist_id, overlay)
        return None if row is None else vectors_of(self.index, np.array([row]))[0]

    def precomputed(self, k: int) -> bool:
        """Whether an answer of k similar artists can be a slice of the build's precomputed lists."""
        return k <= self.index.manifest.neighbours_k

    def quick_similar_json(self, artist_id: str, k: int, overlay: Overlay | None = None) -> bytes | None:
        """`similar_json` without a search, or None when one is needed.

        For a built-index artist and k within its precomputed list: a slice of the list while
        nothing is written; else the list without the hidden rows, merged with the written
        artists. That is exact: a built-index artist missing from the list ranks below all of
        it, so while k entries remain the top k is among them and the written artists.
        """
        overlay = overlay or self.overlay
        if not self.precomputed(k):
            return None
        row = self.base_row(artist_id, overlay)
        if row is None:
            return None
        if overlay.empty:
            return self.answers.precomputed(row, k)
        assert self.index.neighbours is not None and self.index.neighbour_scores is not None
        rows = self.index.neighbours[row]
        keep = ~np.isin(rows, overlay.hidden_rows)
        if keep.sum() < k:
            return None
        live_cos = overlay.vectors @ vectors_of(self.index, np.array([row]))[0]
        merged = self._merge(rows[keep].astype(np.int64), self.index.neighbour_scores[row][keep], live_cos, overlay, k)
        return hits_json(merged)

    def similar_json(self, artist_id: str, k: int, overlay: Overlay | None = None) -> bytes | None:
        """The JSON results array of the k artists most similar to a served artist (None if not served).

        Read from one snapshot of the writes (`overlay`, default the current one). From the
        precomputed lists when they suffice (`quick_similar_json`); a search otherwise.
        """
        overlay = overlay or self.overlay
        quick = self.quick_similar_json(artist_id, k, overlay)
        if quick is not None:
            return quick
        vector = self.vector_of(artist_id, overlay)
        if vector is None:
            return None
        return hits_json(self.search(vector, k, exclude=artist_id, overlay=overlay))

    def self_query(self, count: int = 20) -> None:
        """Check that artists spread over the index find themselves (top 1 exact, top 10 graph).

        Raise CmarError naming the first artist that does not: the index does not hold what its
        artist table says, or the vectors are broken.
        """
        n = len(self.index)
        depth = 1 if self.index.matrix is not None else 10
        for row in np.unique(np.linspace(0, max(n - 1, 0), num=min(count, n), dtype=np.int64)).tolist():
            vector = vectors_of(self.index, np.array([row]))[0]
            if not np.isfinite(vector).all():
                raise CmarError(f"self-query: artist {self.index.artist_ids[row]!r} has a non-finite vector")
            _, rows = self.index.search(vector[None, :], depth)
            cosines = vectors_of(self.index, rows[0][rows[0] >= 0]) @ vector
            if row not in rows[0] and not (cosines >= 1 - 1e-5).any():
                raise CmarError(
                    f"self-query: artist {self.index.artist_ids[row]!r} is not among its own {depth} nearest"
                )

    # Writing: new overlay snapshots.

    def put(self, artist_id: str, name: str, modalities: list[str], vector: FloatArray) -> bool:
        """Add or replace an artist (fused unit vector); True if it was not served before."""
        created = self.artist(artist_id) is None
        overlay = self.overlay
        penalty = self._penalty(vector)
        row = self.index.row_of.get(artist_id)
        self.overlay = overlay.with_artist(artist_id, name, modalities, vector, penalty, row)
        return created

    def put_many(self, writes: list[tuple[str, str, list[str], FloatArray]]) -> None:
        """Lay many (artist id, name, modalities, fused unit vector) writes over the index in one snapshot.

        The start-up replay and a swap's replay: one new overlay (linear in the number of
        writes), penalties computed in one batched search. Later entries for an id win.
        """
        if not writes:
            return
        latest = {w[0]: w for w in writes}  # the last write of each artist, in first-seen order
        overlay = self.overlay
        keep = [i for i, a in enumerate(overlay.ids) if a not in latest]
        new = list(latest.values())
        vectors = np.asarray([w[3] for w in new], dtype=np.float32).reshape(len(new), -1)
        hidden = {self.index.row_of[a] for a in latest if a in self.index.row_of}
        self.overlay = Overlay(
            dim=overlay.dim,
            ids=(*(overlay.ids[i] for i in keep), *(w[0] for w in new)),
            names=(*(overlay.names[i] for i in keep), *(w[1] for w in new)),
            modalities=(*(overlay.modalities[i] for i in keep), *(tuple(w[2]) for w in new)),
            vectors=np.vstack([overlay.vectors[keep], vectors]),
            penalty=np.concatenate([overlay.penalty[keep], self._penalties(vectors)]).astype(np.float32),
            hidden=overlay.hidden | hidden,
        )

    def delete_many(self, artist_ids: list[str]) -> None:
        """Stop serving many artists in one snapshot (ids not served are ignored)."""
        gone = set(artist_ids)
        if not gone:
            return
        overlay = self.overlay
        keep = [i for i, a in enumerate(overlay.ids) if a not in gone]
        self.overlay = Overlay(
            dim=overlay.dim,
            ids=tuple(overlay.ids[i] for i in keep),
            names=tuple(overlay.names[i] for i in keep),
            modalities=tuple(overlay.modalities[i] for i in keep),
            vectors=overlay.vectors[keep],
            penalty=overlay.penalty[keep],
            hidden=overlay.hidden | {self.index.row_of[a] for a in gone if a in self.index.row_of},
        )

    def delete(self, artist_id: str) -> bool:
        """Stop serving an artist; False if it was not served."""
        if self.artist(artist_id) is None:
            return False
        self.overlay = self.overlay.without_artist(artist_id, self.index.row_of.get(artist_id))
        return True

    def _penalty(self, vector: FloatArray) -> float:
        """A written artist's hub penalty (see `_penalties`)."""
        return float(self._penalties(np.asarray(vector, dtype=np.float32).reshape(1, -1))[0])

    def _penalties(self, vectors: FloatArray) -> FloatArray:
        """Written artists' hub penalties (B,), as the build computes them (`core.vectors.hub_penalty`)
        from their cosines to their nearest built-index artists; vectors (B, D)."""
        hub_k = min(int(self.index.manifest.hub.get("k", 0)), len(self.index))
        if self.index.hub_beta == 0 or hub_k == 0 or len(vectors) == 0:
            return np.zeros(len(vectors), dtype=np.float32)
        cosines, rows = self.index.search(np.asarray(vectors, dtype=np.float32), hub_k)
        beta = self.index.hub_beta
        if (rows >= 0).all():
            return hub_penalty(cosines, beta)
        return np.array(  # a graph index may return fewer than hub_k neighbours
            [
                hub_penalty(c[r >= 0][None, :], beta)[0] if (r >= 0).any() else 0.0
                for c, r in zip(cosines, rows, strict=True)
            ],
            dtype=np.float32,
        )

    def encode_query(
        self, vectors: dict[str, FloatArray], sets: dict[str, tuple[FloatArray, np.ndarray]]
    ) -> FloatArray:
        """Encode and fuse a cold-start query.

        vectors: modality -> (d,) input vector. sets: modality -> (T, d) item vectors, heaviest
        first, and their (T,) raw weights; only the first `max_tags` are used.
        Returns the fused (D,) unit vector.
        """
        names = [*vectors, *sets]
        stack = np.zeros((len(names), 1, self.model.dim), dtype=np.float32)  # (M, 1, D)
        for m, name in enumerate(names):
            if self.model.kind(name) is ModalityKind.VECTOR:
                stack[m] = self.model.encode_vectors(name, vectors[name][None, :])
            else:
                items, weights = (part[: self.model.manifest.max_tags] for part in sets[name])
                stack[m] = self.model.encode_set(name, items[None], item_weights(weights[None]))
        return self.model.fuse(stack, np.ones((len(names), 1), dtype=bool), names)[0]


def hits_json(hits: list[Hit]) -> bytes:
    """The JSON results array of hits: each artist's fragment with its score."""
    items = scored_items([h.fragment for h in hits], np.array([h.score for h in hits], dtype=np.float32))
    return b"[" + b",".join(items) + b"]"
