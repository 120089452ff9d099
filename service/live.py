"""Artists written through the API, laid over the built index without rebuilding it.

An `Overlay` is an immutable snapshot: the artists added (or replaced) since the build, with
their fused vectors and hub penalties, and the built index's rows hidden by a replacement or
a deletion. A write makes a new snapshot and swaps it in with one assignment, so a request
reads one consistent snapshot from start to end without locks. Each snapshot carries its own
cache of whole response bodies, so a write never leaves a stale answer behind.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import orjson

from core.balance import modality_bits
from core.vectors import FloatArray, hub_penalty
from service.names import search_key

if TYPE_CHECKING:
    from service.artifacts import Artifacts

BODY_CACHE_BYTES = 64 * 2**20  # memory for whole response bodies per snapshot (about 1 kB each at k = 10)
ENTRY_OVERHEAD = 200  # bytes a cache entry costs besides its body and id: dict slot, tuple, objects

CacheKey = tuple[str, int]  # (artist id, k): validated parameters, never the raw query string


class BodyCache:
    """Similar-list bodies by (artist id, k), the oldest dropped past a budget that counts everything held.

    The budget counts each entry's body, its key's id and a fixed overhead, so no sequence of
    requests grows memory past it; keys are validated parameters, so a junk query string
    never makes an entry.
    """

    def __init__(self, budget: int = BODY_CACHE_BYTES) -> None:
        self.bodies: dict[CacheKey, bytes] = {}
        self.budget = budget
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def cost(key: CacheKey, body: bytes) -> int:
        """Bytes an entry counts against the budget."""
        return len(body) + len(key[0].encode("utf-8", "surrogatepass")) + ENTRY_OVERHEAD

    @property
    def held(self) -> int:
        """Bytes counted against the budget now."""
        return self._bytes

    def get(self, key: CacheKey) -> bytes | None:
        """The body kept for a request, if any."""
        return self.bodies.get(key)

    def put(self, key: CacheKey, body: bytes) -> None:
        """Keep a body for its request."""
        with self._lock:
            old = self.bodies.pop(key, None)
            if old is not None:
                self._bytes -= self.cost(key, old)
            self.bodies[key] = body
            self._bytes += self.cost(key, body)
            while self._bytes > self.budget and self.bodies:
                oldest = next(iter(self.bodies))
                self._bytes -= self.cost(oldest, self.bodies.pop(oldest))

    def __contains__(self, key: CacheKey) -> bool:
        return key in self.bodies


def fragment(artist_id: str, name: str, modalities: list[str]) -> bytes:
    """An artist's JSON without its closing brace, to which a result's score is appended."""
    return orjson.dumps({"artist_id": artist_id, "name": name, "modalities": modalities})[:-1]


class Detail(NamedTuple):
    """What explanations read of a written artist: its own unit embedding per modality, and its named items."""

    embeddings: dict[str, FloatArray]  # modality -> (D,)
    items: dict[str, dict[str, float]]  # set modality -> item -> weight, heaviest first


Written = tuple[str, str, list[str], FloatArray, Detail | None]  # id, name, modalities, fused unit vector, detail


@dataclass(frozen=True)
class Overlay:
    """Live writes over a built index (empty right after a build)."""

    dim: int
    ids: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    modalities: tuple[tuple[str, ...], ...] = ()
    vectors: FloatArray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    penalty: FloatArray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    hidden: frozenset[int] = frozenset()  # built-index rows replaced or deleted
    details: tuple[Detail | None, ...] = ()  # aligned with ids (empty: none known)
    cache: BodyCache = field(default_factory=BodyCache)

    def __post_init__(self) -> None:
        if not self.ids:  # the empty default has no shape yet
            object.__setattr__(self, "vectors", np.zeros((0, self.dim), dtype=np.float32))
        elif self.vectors.shape != (len(self.ids), self.dim):
            raise ValueError(
                f"overlay vectors {self.vectors.shape} for {len(self.ids)} artists of dimension {self.dim}"
            )
        object.__setattr__(self, "row_of", {a: i for i, a in enumerate(self.ids)})
        object.__setattr__(self, "bits", modality_bits(self.modalities))
        object.__setattr__(self, "hidden_rows", np.array(sorted(self.hidden), dtype=np.int64))
        object.__setattr__(
            self,
            "fragments",
            [fragment(a, n, list(m)) for a, n, m in zip(self.ids, self.names, self.modalities, strict=True)],
        )

    @property
    def search_keys(self) -> list[str]:
        """The written artists' names in search form (`service.names.search_key`), made once per snapshot."""
        keys = self.__dict__.get("_search_keys")
        if keys is None:
            keys = [search_key(n) for n in self.names]
            object.__setattr__(self, "_search_keys", keys)
        return keys

    row_of: dict[str, int] = field(init=False, repr=False, compare=False)
    hidden_rows: np.ndarray = field(init=False, repr=False, compare=False)  # `hidden`, sorted
    bits: np.ndarray = field(init=False, repr=False, compare=False)  # (A,) each written artist's modality bits
    fragments: list[bytes] = field(init=False, repr=False, compare=False)

    @property
    def empty(self) -> bool:
        """True when nothing was written: the built index answers alone."""
        return not self.ids and not self.hidden

    def changed(
        self,
        drop: set[str],
        hide: set[int],
        added: list[tuple[str, str, list[str]]] | None = None,
        vectors: FloatArray | None = None,
        penalties: FloatArray | None = None,
        details: list[Detail | None] | None = None,
    ) -> Overlay:
        """A new snapshot: the written artists in `drop` and those `added` removed, the built-index
        rows `hide` hidden, and `added` (id, name, modalities) appended with their (A, D) `vectors`,
        (A,) hub `penalties` (all three given together, or none) and details (default none)."""
        added = added or []
        old_details = self.details or (None,) * len(self.ids)
        new_details = details or [None] * len(added)
        gone = drop | {a for a, _, _ in added}
        keep = [i for i, a in enumerate(self.ids) if a not in gone]
        new_vectors = np.zeros((0, self.dim), dtype=np.float32) if vectors is None else vectors
        new_penalties = np.zeros(0, dtype=np.float32) if penalties is None else penalties
        return Overlay(
            dim=self.dim,
            ids=(*(self.ids[i] for i in keep), *(a for a, _, _ in added)),
            names=(*(self.names[i] for i in keep), *(n for _, n, _ in added)),
            modalities=(*(self.modalities[i] for i in keep), *(tuple(m) for _, _, m in added)),
            vectors=np.vstack([self.vectors[keep], np.asarray(new_vectors, dtype=np.float32).reshape(-1, self.dim)]),
            penalty=np.concatenate([self.penalty[keep], np.asarray(new_penalties, dtype=np.float32)]),
            hidden=self.hidden | hide,
            details=(*(old_details[i] for i in keep), *new_details),
        )

    def served(self, n: int) -> np.ndarray:
        """(n,) bool: which of a built index's n rows this snapshot still serves (not replaced or deleted)."""
        mask = np.ones(n, dtype=bool)
        mask[self.hidden_rows] = False
        return mask

    def detail(self, j: int) -> Detail | None:
        """Written artist j's detail, if known."""
        return self.details[j] if self.details else None


# Writing: each function lays a new snapshot over an Artifacts' index with one assignment.


def _rows(artifacts: Artifacts, artist_ids: set[str]) -> set[int]:
    """The built-index rows of these artists (those the index holds)."""
    return {artifacts.index.row_of[a] for a in artist_ids if a in artifacts.index.row_of}


def put(
    artifacts: Artifacts,
    artist_id: str,
    name: str,
    modalities: list[str],
    vector: FloatArray,
    detail: Detail | None = None,
) -> bool:
    """Add or replace an artist (fused unit vector); True if it was not served before."""
    created = artifacts.artist(artist_id) is None
    put_many(artifacts, [(artist_id, name, modalities, vector, detail)])
    return created


def put_many(artifacts: Artifacts, writes: list[Written]) -> None:
    """Lay many (artist id, name, modalities, fused unit vector, detail) writes over the index in one snapshot.

    The start-up replay and a swap's replay: one new overlay (linear in the number of
    writes), penalties computed in one batched search. Later entries for an id win.
    """
    if not writes:
        return
    latest = {w[0]: w for w in writes}  # the last write of each artist, in first-seen order
    new = list(latest.values())
    vectors = np.asarray([w[3] for w in new], dtype=np.float32).reshape(len(new), -1)
    added = [(w[0], w[1], w[2]) for w in new]
    hide = _rows(artifacts, set(latest))
    own = np.array([artifacts.index.row_of.get(w[0], -1) for w in new], dtype=np.int64)
    penalties = _penalties(artifacts, vectors, own)
    artifacts.overlay = artifacts.overlay.changed(set(), hide, added, vectors, penalties, [w[4] for w in new])


def delete_many(artifacts: Artifacts, artist_ids: list[str]) -> None:
    """Stop serving many artists in one snapshot (ids not served are ignored)."""
    gone = set(artist_ids)
    if gone:
        artifacts.overlay = artifacts.overlay.changed(gone, _rows(artifacts, gone))


def delete(artifacts: Artifacts, artist_id: str) -> bool:
    """Stop serving an artist; False if it was not served."""
    if artifacts.artist(artist_id) is None:
        return False
    delete_many(artifacts, [artist_id])
    return True


def _penalties(artifacts: Artifacts, vectors: FloatArray, own: np.ndarray) -> FloatArray:
    """Written artists' hub penalties (B,), as the build computes them (`core.vectors.hub_penalty`):
    from their cosines to their hub_k nearest built-index artists; vectors (B, D).

    `own` (B,): the built-index row each written artist replaces (-1 for a new artist), which is
    left out as the build leaves an artist out of its own neighbours, so an artist written again
    with its catalogue inputs keeps the build's penalty. The other built rows all count, whether
    or not later writes hide them, and written artists do not: a write's penalty does not depend
    on the writes before it, so the start-up replay gives every written artist the same penalty.
    """
    index = artifacts.index
    hub_k = min(index.manifest.hub.k, len(index) - 1)
    if index.hub_beta == 0 or hub_k <= 0 or len(vectors) == 0:
        return np.zeros(len(vectors), dtype=np.float32)
    cosines, rows = index.search(np.asarray(vectors, dtype=np.float32), hub_k + 1, by_cosine=True)
    keep = (rows >= 0) & (rows != np.asarray(own, dtype=np.int64)[:, None])
    keep &= np.cumsum(keep, axis=1) <= hub_k  # the hub_k nearest others
    beta = index.hub_beta
    if (keep.sum(axis=1) == hub_k).all():
        return hub_penalty(cosines[keep].reshape(len(vectors), hub_k), beta)
    return np.array(  # a graph index may return fewer than hub_k neighbours
        [hub_penalty(c[m][None, :], beta)[0] if m.any() else 0.0 for c, m in zip(cosines, keep, strict=True)],
        dtype=np.float32,
    )
