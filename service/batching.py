"""Cold-start queries that arrive together, answered together.

Much of a cold start is fixed cost: an ONNX Runtime call per encoder and a pass over the
index's vectors, whatever the number of queries. `ColdStartBatcher` collects the queries that
reach the event loop together and answers them with one call per encoder and one index search
(`service.queries.encode_many`, `service.search.search_many`), in a worker thread while the
event loop reads the next requests. The wait is bounded, never by a timer: a batch starts as
soon as the worker is free (a lone query at once), with the queries that arrived meanwhile,
at most `max_batch` of them.

Each answer is the one a batch of one would give, to the last bit (the encoders and the
search are batch-invariant; tests/service/test_batching.py checks it).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import HTTPException

from service.artifacts import Artifacts
from service.live import Overlay
from service.queries import QueryInputs, encode_many
from service.search import Hit, prior_weight, search_many

log = logging.getLogger(__name__)

MAX_BATCH = 64


@dataclass
class _Pending:
    artifacts: Artifacts
    inputs: QueryInputs
    k: int
    answer: asyncio.Future[list[Hit]]


def answer_batch(
    artifacts: Artifacts,
    inputs: list[QueryInputs],
    ks: list[int],
    prior: bool = True,
    overlay: Overlay | None = None,
) -> list[list[Hit] | HTTPException]:
    """The hits of each query (or the 422 of one the encoders overflow on), encoded and searched together.

    Ranked with the popularity prior of its modalities (`service.search.prior_weight`) unless
    `prior` is False (the evaluation's ablation), against one snapshot of the writes (`overlay`,
    default the current one).
    """
    encoded = encode_many(artifacts, inputs)
    fine = [(e, k, i) for e, k, i in zip(encoded, ks, inputs, strict=True) if not isinstance(e, HTTPException)]
    priors = [prior_weight(i.modalities, i.n_items("tag")) if prior else 0.0 for _, _, i in fine]
    slots = [artifacts.index.slot_of(i.modalities) for _, _, i in fine]
    found = iter(
        search_many(
            artifacts,
            np.stack([e for e, _, _ in fine]),
            [k for _, k, _ in fine],
            overlay=overlay,
            priors=priors,
            slots=slots,
        )
        if fine
        else []
    )
    return [e if isinstance(e, HTTPException) else next(found) for e in encoded]


class ColdStartBatcher:
    """Batches concurrent cold-start queries (see the module's docstring).

    One batch at a time is computed, in a worker thread of its own, so that the event loop
    goes on reading requests (ONNX Runtime and BLAS release the GIL): the queries that arrive
    meanwhile make the next batch, which starts as soon as this one is done. Under load the
    batches grow by themselves; a lone query waits for nothing but the hop to the worker.
    """

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self.max_batch = max_batch
        self._pending: list[_Pending] = []
        self._busy = False
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cmar-cold-start")
        self.batches = 0  # batches answered, and queries in them: for the bench's report
        self.queries = 0

    async def hits(self, artifacts: Artifacts, inputs: QueryInputs, k: int) -> list[Hit]:
        """The k nearest served artists to a checked query; a 422 if the encoders overflow on it."""
        loop = asyncio.get_running_loop()
        pending = _Pending(artifacts, inputs, k, loop.create_future())
        self._pending.append(pending)
        if not self._busy:
            self._busy = True
            loop.call_soon(self._start, loop)  # after the requests read in this turn of the loop
        return await pending.answer

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = [p for p in self._pending[: self.max_batch] if not p.answer.done()]  # done: cancelled
        del self._pending[: self.max_batch]
        if not batch:
            if self._pending:
                self._start(loop)
            else:
                self._busy = False
            return
        self.batches += 1
        self.queries += len(batch)
        work = loop.run_in_executor(self._worker, _answer_groups, batch)
        work.add_done_callback(lambda done: self._finish(loop, batch, done))

    def _finish(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending], done: asyncio.Future[list[Any]]) -> None:
        answers = done.result()
        for p, answer in zip(batch, answers, strict=True):
            if p.answer.done():
                continue
            if isinstance(answer, BaseException):
                p.answer.set_exception(answer)
            else:
                p.answer.set_result(answer)
        if self._pending:
            self._start(loop)
        else:
            self._busy = False


def _answer_groups(batch: list[_Pending]) -> list[Any]:
    """Each pending query's hits or exception, a batch per artifacts (a swap between two requests:
    each is answered by the artifacts it started with)."""
    groups: dict[int, list[int]] = {}
    for j, p in enumerate(batch):
        groups.setdefault(id(p.artifacts), []).append(j)
    answers: list[Any] = [None] * len(batch)
    for members in groups.values():
        try:
            found: list[Any] = answer_batch(
                batch[members[0]].artifacts, [batch[j].inputs for j in members], [batch[j].k for j in members]
            )
        except Exception as exc:  # a bug: every request of the group gets it (a logged 500 each)
            found = [exc] * len(members)
        for j, answer in zip(members, found, strict=True):
            answers[j] = answer
    return answers
