"""The artifacts the service answers from: a model and an index built with it, and the queries on them."""

from __future__ import annotations

import logging

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from core.errors import CmarError
from core.modalities import ModalityKind
from core.vectors import FloatArray, item_weights
from inference.encoder import OnnxModel
from inference.index import LoadedIndex, load_index, vectors_of
from service.live import Overlay
from service.names import LazyNameIndex, TagIndex
from service.responses import Answers
from service.settings import Settings

log = logging.getLogger(__name__)

MODEL_HEADER = "X-Model-Version"
INDEX_HEADER = "X-Index-Version"


class Artifacts:
    """A verified model and index pair, and the live writes laid over the index."""

    def __init__(self, model: OnnxModel, index: LoadedIndex) -> None:
        self.model = model
        self.index = index
        self.answers = Answers(index)
        self.names = LazyNameIndex(index.names)  # name search, made on its first use
        self.tags = TagIndex(model.vocabularies, index.tag_counts)
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

    def slot_of(self, artist_id: str, overlay: Overlay | None = None) -> int:
        """A served artist's slot in the index's modality balance, from its modalities (the neutral slot
        when it is not served)."""
        found = self.artist(artist_id, overlay)
        return self.index.slot_of(found[1] if found is not None else [])

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
            _, rows = self.index.search(vector[None, :], depth, by_cosine=True)  # as the build's self-check
            cosines = vectors_of(self.index, rows[0][rows[0] >= 0]) @ vector
            if row not in rows[0] and not (cosines >= 1 - 1e-5).any():
                raise CmarError(
                    f"self-query: artist {self.index.artist_ids[row]!r} is not among its own {depth} nearest"
                )

    def encode_modalities(
        self, queries: list[tuple[dict[str, FloatArray], dict[str, tuple[FloatArray, np.ndarray]]]]
    ) -> tuple[FloatArray, np.ndarray]:
        """Encode cold-start queries together: each query's own unit embedding per modality, before
        fusion, (M, B, D), zero where not given, and (M, B) presence; modalities in the order of
        `model.sessions` (`model.fuse` then makes the fused vectors). One ONNX Runtime call per
        vector encoder and one per set length (`_encode_sets`).

        Each query is (vectors, sets): vectors maps a modality to its (d,) input; sets maps one
        to its (T, d) item vectors, heaviest first, and their (T,) raw weights, of which the
        first `max_tags` are used.

        A query's embeddings are the same to the last bit whatever else is in the batch: a set
        is encoded at its own length, in a call of at least `MIN_SET_BATCH` rows (ONNX Runtime
        computes attention over a batch of one by another kernel, and padding to another length
        can change the last bit); fusion is batch-invariant (`core.fusion.Fusion.fuse`).
        """
        model = self.model
        names = list(model.sessions)
        stack = np.zeros((len(names), len(queries), model.dim), dtype=np.float32)  # (M, B, D)
        present = np.zeros((len(names), len(queries)), dtype=bool)
        for m, name in enumerate(names):
            cols = [b for b, (vectors, sets) in enumerate(queries) if name in vectors or name in sets]
            if not cols:
                continue
            if model.kind(name) is ModalityKind.VECTOR:
                stack[m, cols] = model.encode_vectors(name, np.stack([queries[b][0][name] for b in cols]))
            else:
                self._encode_sets(name, [queries[b][1][name] for b in cols], stack[m], cols)
            present[m, cols] = True
        return stack, present

    def _encode_sets(
        self, name: str, sets: list[tuple[FloatArray, np.ndarray]], out: FloatArray, cols: list[int]
    ) -> None:
        """Encode set inputs into out[cols]: one ONNX Runtime call per number of items, no padding.

        Each set keeps its first `max_tags` items. The encoder's cost grows with the item slots
        (about 7 us per slot per set here), and most artists have a few tags, so sets are not
        padded to a common length: those with the same number of items share a call. A call
        holds at least `MIN_SET_BATCH` rows (a lone set is repeated).
        """
        model = self.model
        by_length: dict[int, list[int]] = {}
        for j, (_, weights) in enumerate(sets):
            by_length.setdefault(min(len(weights), model.manifest.max_tags), []).append(j)
        for length, members in by_length.items():
            rows = [*members, *[members[0]] * (MIN_SET_BATCH - len(members))]
            items = np.stack([sets[j][0][:length] for j in rows])
            weights = np.stack([sets[j][1][:length] for j in rows])
            encoded = model.encode_set(name, items, item_weights(weights))
            out[[cols[j] for j in members]] = encoded[: len(members)]


MIN_SET_BATCH = 2  # see Artifacts.encode_modalities
