"""Writes and model swaps: PUT and DELETE of artists, POST /admin/swap, and the start-up replay.

Every write is checked and encoded, then committed to the `WriteStore`, then applied and
acknowledged; a write the store cannot take is a 503 and is not served. Writes and the end of
a swap take one lock, so the database, the overlay and the served artifacts change in one
order. A swap loads and verifies the new artifacts beside the running ones, replays the
stored writes into them without the lock, and only then replaces them with one assignment:
requests in flight finish on the artifacts they started with.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from core.errors import CmarError
from core.names import artist_id_problem
from core.store import Write, WriteStore, WritesUnavailable
from service import live as overlay_writes
from service.artifacts import Artifacts
from service.auth import require_key
from service.churn import churn
from service.deps import LiveDep, MetricsDep, ServingDep, SettingsDep
from service.queries import encode_checked, query_inputs, unprocessable
from service.schemas import ArtistWrite, Churn, ErrorDetail, SwapRequest, SwapResult, WriteResult
from service.settings import Settings, writes_db
from service.state import Serving

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(require_key)])


@dataclass(frozen=True)
class Prepared:
    """A PUT body checked against the model and encoded."""

    name: str
    modalities: list[str]
    vector: np.ndarray
    unknown_tags: list[str]
    detail: overlay_writes.Detail  # for explanations


def prepare(artifacts: Artifacts, body: dict[str, Any]) -> Prepared:
    """Check a PUT body against the model and encode it (a 422 naming the field if it does not fit)."""
    artist = ArtistWrite.model_validate(body)  # type: ignore[attr-defined]
    inputs = query_inputs(artifacts, artist)
    vector, own = encode_checked(artifacts, inputs)
    detail = overlay_writes.Detail(own, inputs.items)
    return Prepared(artist.name, inputs.modalities, vector, inputs.unknown_tags, detail)


def apply_write(artifacts: Artifacts, artist_id: str, body: dict[str, Any] | None) -> WriteResult:
    """Apply one write (a PUT body, or None for a delete) to the artifacts' overlay."""
    if body is None:
        return WriteResult(artist_id=artist_id, deleted=overlay_writes.delete(artifacts, artist_id))
    return _put(artifacts, artist_id, prepare(artifacts, body))


def _result(artist_id: str, p: Prepared, created: bool) -> WriteResult:
    return WriteResult(
        artist_id=artist_id, name=p.name, modalities=p.modalities, created=created, unknown_tags=p.unknown_tags
    )


def _put(artifacts: Artifacts, artist_id: str, p: Prepared) -> WriteResult:
    created = overlay_writes.put(artifacts, artist_id, p.name, p.modalities, p.vector, p.detail)
    return _result(artist_id, p, created)


_NOT_APPLICABLE = (HTTPException, ValueError, CmarError, ValidationError)


def replay_writes(artifacts: Artifacts, writes: list[Write]) -> tuple[int, int]:
    """Lay stored writes (one per artist) over freshly loaded artifacts in one snapshot: (applied, not applied).

    Linear in the number of writes: each is checked and encoded once, then one overlay is
    made (`service.live.put_many`). A write the model cannot take (a modality it lacks, a
    dimension it does not have) is logged and skipped; it stays in the database.
    """
    puts: list[overlay_writes.Written] = []
    deletes: list[str] = []
    skipped = 0
    for write in writes:
        if write.body is None:
            deletes.append(write.artist_id)
            continue
        try:
            p = prepare(artifacts, write.body)
        except _NOT_APPLICABLE as exc:
            detail = getattr(exc, "detail", exc)
            log.warning(
                "stored write of %r not applied to model %s: %s", write.artist_id, artifacts.model.version, detail
            )
            skipped += 1
            continue
        puts.append((write.artist_id, p.name, p.modalities, p.vector, p.detail))
    overlay_writes.delete_many(artifacts, deletes)
    overlay_writes.put_many(artifacts, puts)
    return len(puts) + len(deletes), skipped


def replay(artifacts: Artifacts, store: WriteStore) -> tuple[int, int]:
    """Apply every stored write to freshly loaded artifacts: (writes applied, rows skipped).

    A damaged row (malformed JSON, a non-integer sequence number, an id the API cannot
    address) and a write the model cannot take are skipped with a warning naming the
    database (or model), the row and the artist; the others are served.
    """
    started = time.perf_counter()
    writes, damaged = store.load()
    for bad in damaged:
        log.warning("%s: stored row %d (artist %r) skipped: %s", store.path, bad.rowid, bad.artist_id, bad.reason)
    applied, not_applied = replay_writes(artifacts, writes)
    skipped = len(damaged) + not_applied
    if applied or skipped:
        log.log(
            logging.WARNING if skipped else logging.INFO,
            "replayed %d stored write(s) into index %s in %.2f s; %d skipped (damaged or not for this model)",
            applied,
            artifacts.index.version,
            time.perf_counter() - started,
            skipped,
        )
    return applied, skipped


def _current(serving: Serving) -> Artifacts:
    """The artifacts served now (a 503 if the app is shutting down)."""
    if serving.artifacts is None:
        raise HTTPException(status_code=503, detail="artifacts are not loaded")
    return serving.artifacts


def _unavailable(exc: WritesUnavailable) -> HTTPException:
    return HTTPException(status_code=503, detail=f"the write was not stored: {exc}", headers={"Retry-After": "60"})


def _check_id(artist_id: str) -> None:
    problem = artist_id_problem(artist_id)
    if problem is not None:
        raise unprocessable(["path", "artist_id"], problem)


@router.put(
    "/artists/{artist_id}",
    response_model=WriteResult,
    tags=["writes"],
    status_code=200,
    responses={
        201: {"model": WriteResult, "description": "the artist was added"},
        503: {"model": ErrorDetail, "description": "the write could not be stored, and is not served; says why"},
    },
)
async def put_artist(
    artist_id: str,
    artist: ArtistWrite,  # type: ignore[valid-type]
    serving: ServingDep,
    live: LiveDep,
    metrics: MetricsDep,
    response: Response,
) -> WriteResult:
    """Add or replace an artist: stored durably, then served, then acknowledged (201 if new)."""
    _check_id(artist_id)
    body = artist.model_dump(exclude_none=True)  # type: ignore[attr-defined]

    def commit() -> WriteResult:
        with live.lock:
            artifacts = _current(serving)  # under the lock: a swap may have happened since the request began
            prepared = prepare(artifacts, body)  # a bad body is refused before anything is stored
            result = _result(artist_id, prepared, created=artifacts.artist(artist_id) is None)
            result.model_dump_json()  # the answer can be written: nothing fails after the store
            try:
                live.store.put(artist_id, body)
            except WritesUnavailable as exc:
                raise _unavailable(exc) from None
            overlay_writes.put(
                artifacts, artist_id, prepared.name, prepared.modalities, prepared.vector, prepared.detail
            )
            return result

    result = await run_in_threadpool(commit)
    metrics.writes.labels("put").inc()
    response.status_code = 201 if result.created else 200
    log.info("put %s (%s)", artist_id, ", ".join(result.modalities))
    return result


@router.delete(
    "/artists/{artist_id}",
    response_model=WriteResult,
    tags=["writes"],
    responses={503: {"model": ErrorDetail, "description": "the delete could not be stored, and is not applied"}},
)
async def delete_artist(artist_id: str, serving: ServingDep, live: LiveDep, metrics: MetricsDep) -> WriteResult:
    """Stop serving an artist, durably; 404 if it is not served."""

    def commit() -> WriteResult:
        with live.lock:
            artifacts = _current(serving)
            if artifacts.artist(artist_id) is None:
                raise HTTPException(status_code=404, detail=f"artist {artist_id!r} is not in the index")
            try:
                live.store.delete(artist_id)
            except WritesUnavailable as exc:
                raise _unavailable(exc) from None
            return apply_write(artifacts, artist_id, None)

    result = await run_in_threadpool(commit)
    metrics.writes.labels("delete").inc()
    log.info("deleted %s", artist_id)
    return result


def _swap_result(fresh: Artifacts, old: Artifacts, replayed: int, changed: Churn, swapped: bool) -> SwapResult:
    return SwapResult(
        model_version=fresh.model.version,
        index_version=fresh.index.version,
        previous_model_version=old.model.version,
        previous_index_version=old.index.version,
        n_artists=len(fresh),
        replayed_writes=replayed,
        swapped=swapped,
        churn=changed,
    )


def served_file(settings: Settings) -> Path:
    """Where the last swap's folders are recorded: beside the write database."""
    db = writes_db(settings)
    return db.with_name(db.name + ".served.json")


def resume_swap(settings: Settings) -> Settings:
    """The settings with the folders of the last swap, if one was recorded and `resume_swap` is on.

    A restart then serves what was served before it, not the folders of the command line; the
    choice is logged as a warning either way, so that it is never silent.
    """
    path = served_file(settings)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        model_dir, index_dir = Path(record["model_dir"]), Path(record["index_dir"])
    except FileNotFoundError:
        return settings
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: unreadable swap record, ignored (%s)", path, exc)
        return settings
    if (model_dir.resolve(), index_dir.resolve()) == (settings.model_dir.resolve(), settings.index_dir.resolve()):
        return settings
    if not settings.resume_swap:
        log.warning(
            "the last swap served %s + %s; starting with the configured %s + %s (CMAR_RESUME_SWAP=false)",
            model_dir,
            index_dir,
            settings.model_dir,
            settings.index_dir,
        )
        return settings
    log.warning(
        "resuming the last swap: serving %s + %s instead of the configured %s + %s (%s; CMAR_RESUME_SWAP=false "
        "to serve the configured folders)",
        model_dir,
        index_dir,
        settings.model_dir,
        settings.index_dir,
        path,
    )
    return settings.model_copy(update={"model_dir": model_dir, "index_dir": index_dir})


def load_served(settings: Settings) -> Artifacts:
    """The artifacts to serve at start-up: the last swap's (`resume_swap`) if they still load, else the configured.

    Raises CmarError (one line) when the configured folders do not load either.
    """
    resumed = resume_swap(settings)
    if resumed is settings:
        return Artifacts.load(settings)
    try:
        return Artifacts.load(resumed)
    except CmarError as exc:
        log.error(
            "the last swap's folders do not load (%s); serving the configured %s + %s",
            exc,
            settings.model_dir,
            settings.index_dir,
        )
        return Artifacts.load(settings)


def _record_swap(settings: Settings, model_dir: Path, index_dir: Path, fresh: Artifacts) -> None:
    path = served_file(settings)
    record = {
        "model_dir": str(model_dir.resolve()),
        "index_dir": str(index_dir.resolve()),
        "model_version": fresh.model.version,
        "index_version": fresh.index.version,
        "swapped_at": time.time(),
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, path)
    except OSError as exc:
        log.error("swap served but not recorded in %s (%s): a restart serves the configured folders", path, exc)


@router.post(
    "/admin/swap",
    response_model=SwapResult,
    tags=["admin"],
    responses={409: {"model": ErrorDetail, "description": "the new artifacts were refused; the old keep serving"}},
)
async def swap(
    serving: ServingDep, live: LiveDep, settings: SettingsDep, metrics: MetricsDep, body: SwapRequest | None = None
) -> SwapResult:
    """Load, verify and serve new artifacts without stopping; on any problem keep serving the old (409).

    The stored writes are replayed into the new artifacts without holding the write lock
    (reads, writes and readiness go on); only the writes stored meanwhile are applied under it,
    just before the one assignment that swaps. The folders served are recorded beside the
    write database, and a restart serves them again (`resume_swap`). The answer (and the log)
    says how much the similar lists change (`service.churn`); with `dry_run` nothing is swapped.
    """
    wanted = body or SwapRequest()
    model_dir = Path(wanted.model_dir) if wanted.model_dir else settings.model_dir
    index_dir = Path(wanted.index_dir) if wanted.index_dir else settings.index_dir

    def refuse(reason: str) -> HTTPException:
        log.error("swap to %s + %s refused, still serving the old artifacts: %s", model_dir, index_dir, reason)
        metrics.swaps.labels("refused").inc()
        return HTTPException(status_code=409, detail=f"swap refused, still serving the old artifacts: {reason}")

    def load_and_swap() -> SwapResult:
        try:
            fresh = Artifacts.load(settings.model_copy(update={"model_dir": model_dir, "index_dir": index_dir}))
            fresh.self_query()
        except CmarError as exc:
            raise refuse(str(exc)) from None
        except Exception as exc:  # any other failure to load untrusted folders is a refusal, never a 500
            log.exception("swap: unexpected error loading %s + %s", model_dir, index_dir)
            raise refuse(f"the folders could not be loaded ({type(exc).__name__})") from None
        writes, _ = live.store.load()
        seen = max((w.seq for w in writes), default=0)
        try:
            replayed, _ = replay_writes(fresh, writes)  # outside the lock: the slow part
        except Exception as exc:  # a row no check foresaw must refuse the swap, not fail the request
            log.exception("swap: replaying the stored writes into %s + %s failed", model_dir, index_dir)
            raise refuse(f"the stored writes could not be replayed into them ({type(exc).__name__})") from None
        changed = churn(_current(serving), fresh)
        if wanted.dry_run:
            old = _current(serving)
            log.info(
                "dry-run swap to model %s / index %s: S_10 %s, S_200 %s over %d artists; nothing swapped",
                fresh.model.version, fresh.index.version, changed.s10, changed.s200, changed.sampled,
            )  # fmt: skip
            return _swap_result(fresh, old, replayed, changed, swapped=False)
        with live.lock:
            for write in live.store.writes_since(seen):  # stored while the replay ran
                try:
                    apply_write(fresh, write.artist_id, write.body)
                    replayed += 1
                except _NOT_APPLICABLE as exc:
                    log.warning("stored write of %r not applied: %s", write.artist_id, getattr(exc, "detail", exc))
            old = _current(serving)
            serving.artifacts = fresh  # one assignment: requests in flight keep the old
            _record_swap(settings, model_dir, index_dir, fresh)  # under the lock: records follow swaps' order
        metrics.serving(fresh)
        metrics.swaps.labels("ok").inc()
        log.info(
            "swapped model %s / index %s in for %s / %s; S_10 %s, S_200 %s over %d artists",
            fresh.model.version, fresh.index.version, old.model.version, old.index.version,
            changed.s10, changed.s200, changed.sampled,
        )  # fmt: skip
        return _swap_result(fresh, old, replayed, changed, swapped=True)

    return await run_in_threadpool(load_and_swap)
