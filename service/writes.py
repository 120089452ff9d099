"""Writes and model swaps: PUT and DELETE of artists, POST /admin/swap, and the start-up replay.

Every write is committed to the `WriteStore` before it is applied and acknowledged; writes,
replays and swaps take one lock, so the database, the overlay and the served artifacts change
in one order. A swap loads and verifies the new artifacts beside the running ones, replays
the stored writes into them, and only then replaces them with one assignment: requests in
flight finish on the artifacts they started with.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool

from core.errors import CmarError
from core.store import WriteStore
from service.artifacts import Artifacts
from service.auth import require_key
from service.queries import encode_checked, query_inputs
from service.schemas import ArtistWrite, ErrorDetail, SwapRequest, SwapResult, WriteResult
from service.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(require_key)])


@dataclass
class Live:
    """The write database and the lock that orders writes, replays and swaps."""

    store: WriteStore
    lock: threading.Lock


@dataclass(frozen=True)
class Prepared:
    """A PUT body checked against the model and encoded."""

    name: str
    modalities: list[str]
    vector: np.ndarray
    unknown_tags: list[str]


def prepare(artifacts: Artifacts, body: dict[str, Any]) -> Prepared:
    """Check a PUT body against the model and encode it (a 422 naming the field if it does not fit)."""
    artist = ArtistWrite.model_validate(body)  # type: ignore[attr-defined]
    vectors, sets, unknown_tags = query_inputs(artifacts, artist)
    return Prepared(artist.name, [*vectors, *sets], encode_checked(artifacts, vectors, sets), unknown_tags)


def apply_write(artifacts: Artifacts, artist_id: str, body: dict[str, Any] | None) -> WriteResult:
    """Apply one write (a PUT body, or None for a delete) to the artifacts' overlay."""
    if body is None:
        return WriteResult(artist_id=artist_id, deleted=artifacts.delete(artist_id))
    return _put(artifacts, artist_id, prepare(artifacts, body))


def _put(artifacts: Artifacts, artist_id: str, p: Prepared) -> WriteResult:
    created = artifacts.put(artist_id, p.name, p.modalities, p.vector)
    return WriteResult(
        artist_id=artist_id, name=p.name, modalities=p.modalities, created=created, unknown_tags=p.unknown_tags
    )


def replay(artifacts: Artifacts, store: WriteStore) -> int:
    """Apply every stored write to freshly loaded artifacts; return how many applied.

    A write the model cannot take (a modality it lacks, a dimension it does not have) is
    logged and skipped; it stays in the database.
    """
    applied = 0
    for write in store.writes():
        try:
            apply_write(artifacts, write.artist_id, write.body)
            applied += 1
        except (HTTPException, ValueError, CmarError) as exc:
            detail = getattr(exc, "detail", exc)
            log.warning(
                "stored write of %r not applied to model %s: %s", write.artist_id, artifacts.model.version, detail
            )
    if applied:
        log.info("replayed %d stored write(s) into index %s", applied, artifacts.index.version)
    return applied


def _live(request: Request) -> Live:
    return request.app.state.live  # type: ignore[no-any-return]


@router.put(
    "/artists/{artist_id}",
    response_model=WriteResult,
    tags=["writes"],
    status_code=200,
    responses={201: {"model": WriteResult, "description": "the artist was added"}},
)
async def put_artist(artist_id: str, artist: ArtistWrite, request: Request, response: Response) -> WriteResult:  # type: ignore[valid-type]
    """Add or replace an artist: served at once, stored durably before the reply (201 if new)."""
    body = artist.model_dump(exclude_none=True)  # type: ignore[attr-defined]
    live = _live(request)

    def commit() -> WriteResult:
        with live.lock:
            artifacts: Artifacts = request.app.state.artifacts
            prepared = prepare(artifacts, body)  # a bad body is refused before anything is stored
            live.store.put(artist_id, body)
            return _put(artifacts, artist_id, prepared)

    result = await run_in_threadpool(commit)
    request.app.state.metrics.writes.labels("put").inc()
    response.status_code = 201 if result.created else 200
    log.info("put %s (%s)", artist_id, ", ".join(result.modalities))
    return result


@router.delete("/artists/{artist_id}", response_model=WriteResult, tags=["writes"])
async def delete_artist(artist_id: str, request: Request) -> WriteResult:
    """Stop serving an artist, durably; 404 if it is not served."""
    live = _live(request)

    def commit() -> WriteResult:
        with live.lock:
            artifacts: Artifacts = request.app.state.artifacts
            if artifacts.artist(artist_id) is None:
                raise HTTPException(status_code=404, detail=f"artist {artist_id!r} is not in the index")
            live.store.delete(artist_id)
            return apply_write(artifacts, artist_id, None)

    result = await run_in_threadpool(commit)
    request.app.state.metrics.writes.labels("delete").inc()
    log.info("deleted %s", artist_id)
    return result


@router.post(
    "/admin/swap",
    response_model=SwapResult,
    tags=["admin"],
    responses={409: {"model": ErrorDetail, "description": "the new artifacts were refused; the old keep serving"}},
)
async def swap(request: Request, body: SwapRequest | None = None) -> SwapResult:
    """Load, verify and serve new artifacts without stopping; on any problem keep serving the old (409)."""
    settings: Settings = request.app.state.settings
    wanted = body or SwapRequest()
    model_dir = Path(wanted.model_dir) if wanted.model_dir else settings.model_dir
    index_dir = Path(wanted.index_dir) if wanted.index_dir else settings.index_dir
    live = _live(request)

    def load_and_swap() -> SwapResult:
        try:
            fresh = Artifacts.load(settings.model_copy(update={"model_dir": model_dir, "index_dir": index_dir}))
            fresh.self_query()
        except CmarError as exc:
            log.error("swap to %s + %s refused, still serving the old artifacts: %s", model_dir, index_dir, exc)
            request.app.state.metrics.swaps.labels("refused").inc()
            raise HTTPException(
                status_code=409, detail=f"swap refused, still serving the old artifacts: {exc}"
            ) from None
        with live.lock:
            old: Artifacts = request.app.state.artifacts
            replayed = replay(fresh, live.store)
            request.app.state.artifacts = fresh  # one assignment: requests in flight keep the old
        request.app.state.metrics.serving(fresh)
        request.app.state.metrics.swaps.labels("ok").inc()
        log.info(
            "swapped model %s / index %s in for %s / %s",
            fresh.model.version,
            fresh.index.version,
            old.model.version,
            old.index.version,
        )
        return SwapResult(
            model_version=fresh.model.version,
            index_version=fresh.index.version,
            previous_model_version=old.model.version,
            previous_index_version=old.index.version,
            n_artists=len(fresh),
            replayed_writes=replayed,
        )

    return await run_in_threadpool(load_and_swap)
