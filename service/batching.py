"""Cold-start queries that arrive together, answered together.

A cold start is mostly fixed cost: an ONNX Runtime call per encoder and a pass over the
index's vectors, whatever the number of queries. `ColdStartBatcher` collects the queries that
reach the event loop together and answers them with one call per encoder and one index search
(`service.queries.encode_many`, `service.search.search_many`). The wait is bounded by one turn
of the event loop, never by a timer: the first query of a batch schedules the batch with
`call_soon`, so the queries whose requests were read in the same turn join it, and a lone
query (one client) is answered at once. A batch holds at most `max_batch` queries.

Each answer is the one a batch of one would give, to the last bit (the encoders and the
search are batch-invariant; tests/service/test_batching.py checks it).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import numpy as np
from fastapi import HTTPException

from service.artifacts import Artifacts
from service.queries import QueryInputs, encode_many
from service.search import Hit, search_many

log = logging.getLogger(__name__)

MAX_BATCH = 64


@dataclass
class _Pending:
    artifacts: Artifacts
    inputs: QueryInputs
    k: int
    answer: asyncio.Future[list[Hit]]


def answer_batch(artifacts: Artifacts, inputs: list[QueryInputs], ks: list[int]) -> list[list[Hit] | HTTPException]:
    """The hits of each query (or the 422 of one the encoders overflow on), encoded and searched together."""
    encoded = encode_many(artifacts, inputs)
    fine = [(e, k) for e, k in zip(encoded, ks, strict=True) if not isinstance(e, HTTPException)]
    found = iter(search_many(artifacts, np.stack([e for e, _ in fine]), [k for _, k in fine]) if fine else [])
    return [e if isinstance(e, HTTPException) else next(found) for e in encoded]


class ColdStartBatcher:
    """Batches concurrent cold-start queries on the event loop (see the module's docstring)."""

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self.max_batch = max_batch
        self._pending: list[_Pending] = []
        self._scheduled = False
        self.batches = 0  # batches answered, and queries in them: for the bench's report
        self.queries = 0

    async def hits(self, artifacts: Artifacts, inputs: QueryInputs, k: int) -> list[Hit]:
        """The k nearest served artists to a checked query; a 422 if the encoders overflow on it."""
        loop = asyncio.get_running_loop()
        pending = _Pending(artifacts, inputs, k, loop.create_future())
        self._pending.append(pending)
        if len(self._pending) >= self.max_batch:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await pending.answer

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        live = [p for p in batch if not p.answer.done()]  # a cancelled request leaves its future done
        if not live:
            return
        self.batches += 1
        self.queries += len(live)
        groups: dict[int, list[_Pending]] = {}
        for p in live:  # a swap between two requests: each is answered by the artifacts it started with
            groups.setdefault(id(p.artifacts), []).append(p)
        for group in groups.values():
            try:
                answers = answer_batch(group[0].artifacts, [p.inputs for p in group], [p.k for p in group])
            except Exception as exc:  # a bug: every request of the batch gets it (a logged 500 each)
                answers = [exc] * len(group)  # type: ignore[list-item]
            for p, answer in zip(group, answers, strict=True):
                if p.answer.done():
                    continue
                if isinstance(answer, BaseException):
                    p.answer.set_exception(answer)
                else:
                    p.answer.set_result(answer)
