"""Similar-artist answers serialised without per-request model objects.

Every indexed artist's JSON (`{"artist_id": ..., "name": ..., "modalities": [...]`) is made
once when the index loads; an answer is those fragments with their scores, joined. For an
artist whose similar list was precomputed at build time, the whole list is serialised once
(on first request, then kept in a bounded cache) with the byte offset after each entry, so
an answer for any k up to the list's length is one slice: no search and no per-result Python
work on the hot path (whole bodies are also kept by request: `service.live.BodyCache`).
The bytes are exactly what the response models in `service.schemas` describe (keys in
another order).
"""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock

import numpy as np
import orjson

from inference.index import LoadedIndex
from service.live import fragment

CACHE_ROWS = 100_000  # serialised lists kept (about 20 kB each at k = 200)


def scored_items(fragments: list[bytes], scores: np.ndarray) -> list[bytes]:
    """Each result's JSON: an artist's fragment (`service.live.fragment`) closed with its score.

    Scores are written in float32's shortest form (b"0.8123457").
    """
    text = orjson.dumps(np.ascontiguousarray(scores, dtype=np.float32), option=orjson.OPT_SERIALIZE_NUMPY)
    texts = text[1:-1].split(b",") if len(fragments) else []
    return [f + b',"score":' + t + b"}" for f, t in zip(fragments, texts, strict=True)]


class Answers:
    """JSON bodies of similar-artist answers for one loaded index."""

    def __init__(self, index: LoadedIndex, cache_rows: int = CACHE_ROWS) -> None:
        self.index = index
        self.fragments = [
            fragment(a, n, m) for a, n, m in zip(index.artist_ids, index.names, index.modalities, strict=True)
        ]
        self.cache_rows = cache_rows
        self._lists: OrderedDict[int, tuple[bytes, list[int]]] = OrderedDict()
        self._lock = Lock()

    def _items(self, rows: np.ndarray, scores: np.ndarray) -> list[bytes]:
        keep = rows >= 0
        return scored_items([self.fragments[r] for r in rows[keep].tolist()], scores[keep])

    def precomputed(self, row: int, k: int) -> bytes:
        """The JSON array of the first k entries of a row's precomputed list (k <= its length)."""
        with self._lock:
            cached = self._lists.get(row)
            if cached is not None:
                self._lists.move_to_end(row)
        if cached is None:
            cached = self._serialise(row)
            with self._lock:
                self._lists[row] = cached
                if len(self._lists) > self.cache_rows:
                    self._lists.popitem(last=False)
        text, ends = cached
        return text[: ends[k - 1]] + b"]"

    def _serialise(self, row: int) -> tuple[bytes, list[int]]:
        """The row's whole list as b"[item,item,..." and the byte offset after each item."""
        assert self.index.neighbours is not None and self.index.neighbour_scores is not None
        items = self._items(self.index.neighbours[row], self.index.neighbour_scores[row])
        ends = (np.cumsum([len(item) + 1 for item in items]) if items else np.zeros(0, dtype=np.int64)).tolist()
        return b"[" + b",".join(items), ends


def similar_body(artist_id: str, k: int, results: bytes) -> bytes:
    """The body of GET /artists/{id}/similar."""
    return b'{"artist_id":' + orjson.dumps(artist_id) + b',"k":' + str(k).encode() + b',"results":' + results + b"}"


def cold_start_body(modalities: list[str], unknown_tags: list[str], k: int, results: bytes) -> bytes:
    """The body of POST /similar."""
    head = orjson.dumps({"modalities": modalities, "unknown_tags": unknown_tags, "k": k})[:-1]
    return head + b',"results":' + results + b"}"
