"""The artifacts the service answers from: a model and an index built with it, and the queries on them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from core.modalities import ModalityKind
from core.vectors import FloatArray, fuse, item_weights
from index_build.encoder import OnnxModel
from index_build.index import LoadedIndex, load_index, vectors_of
from service.responses import Answers
from service.settings import Settings

log = logging.getLogger(__name__)

MODEL_HEADER = "X-Model-Version"
INDEX_HEADER = "X-Index-Version"


@dataclass(frozen=True)
class Hit:
    """One result: an index row and its cosine similarity to the query."""

    row: int
    score: float


class Artifacts:
    """A verified model and index pair."""

    def __init__(self, model: OnnxModel, index: LoadedIndex) -> None:
        self.model = model
        self.index = index
        self.answers = Answers(index)
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

    def search(self, query: FloatArray, k: int, exclude: int | None = None) -> list[Hit]:
        """The k nearest artists to a unit vector, leaving out index row `exclude`."""
        scores, rows = self.index.search(np.asarray(query, dtype=np.float32).reshape(1, -1), k + (exclude is not None))
        hits = [Hit(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0 and r != exclude]
        return hits[:k]

    def similar_to(self, row: int, k: int) -> list[Hit]:
        """The k nearest artists to an indexed artist, the artist itself excluded (always a search)."""
        return self.search(vectors_of(self.index, np.array([row]))[0], k, exclude=row)

    def precomputed(self, k: int) -> bool:
        """Whether an answer of k similar artists is a lookup in the build's precomputed lists."""
        return k <= self.index.manifest.neighbours_k

    def similar_json(self, row: int, k: int) -> bytes:
        """The JSON results array of `similar_to`: a slice of the precomputed list when there is one."""
        if self.precomputed(k):
            return self.answers.precomputed(row, k)
        return self.hits_json(self.similar_to(row, k))

    def hits_json(self, hits: list[Hit]) -> bytes:
        """The JSON results array of hits."""
        return self.answers.results(
            np.array([h.row for h in hits], dtype=np.int64), np.array([h.score for h in hits], dtype=np.float32)
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
        return fuse(stack, np.ones((len(names), 1), dtype=bool))[0]
