"""The FastAPI application: similar artists by id, cold-start queries, writes, swaps, health."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from core.store import WriteStore
from service.artifacts import Artifacts, hits_json
from service.auth import read_access
from service.live import Overlay
from service.middleware import HEALTHY, JSON, BodyLimit, FastPaths
from service.observe import Metrics, Observe
from service.queries import encode_checked, query_inputs
from service.responses import cold_start_body, similar_body
from service.schemas import (
    ERROR_RESPONSES,
    Artist,
    ColdStartResponse,
    Health,
    Readiness,
    SimilarQuery,
    SimilarResponse,
)
from service.settings import MAX_K, Settings, get_settings, writes_db
from service.writes import Live, load_served, replay
from service.writes import router as writes_router

log = logging.getLogger(__name__)


def _error(error: Any) -> dict[str, Any]:
    msg = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    # Only the client's field names: pydantic adds the union member it tried ("list[str]", "function-after[...]").
    loc = [p for p in error.get("loc", ()) if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]
    if loc == ["body"] and error.get("type") == "missing":
        msg = "a JSON body is required: an object with any of the modalities and k"
    return {"loc": loc, "msg": msg, "type": error.get("type", "value_error")}


def validation_errors(errors: list[Any]) -> list[dict[str, Any]]:
    """FastAPI's errors with clean locations, and only the most specific of each field.

    A value that fits no form of a union (tag names, tag weights, tag vectors) fails every
    form; the error that reached deepest into the value says what is wrong, so the shallower
    ones about the same field are dropped (`{"tag": {"rock": 1e-9}}` gives one error, about the weight).
    """
    cleaned = [_error(e) for e in errors]
    deepest = [
        e
        for e in cleaned
        if not any(len(o["loc"]) > len(e["loc"]) and o["loc"][: len(e["loc"])] == e["loc"] for o in cleaned)
    ]
    unique = {(tuple(e["loc"]), e["msg"]): e for e in deepest}
    return list(unique.values())


async def get_artifacts(request: Request) -> Artifacts:
    """The artifacts loaded in the lifespan."""
    artifacts: Artifacts | None = getattr(request.app.state, "artifacts", None)
    if artifacts is None:
        raise HTTPException(status_code=503, detail="artifacts are not loaded yet")
    return artifacts


ArtifactsDep = Annotated[Artifacts, Depends(get_artifacts)]
ArtistId = Annotated[str, Path(description="the artist's id in the catalogue", min_length=1)]


def _served(artifacts: Artifacts, artist_id: str, overlay: Overlay | None = None) -> tuple[str, list[str]]:
    found = artifacts.artist(artist_id, overlay)
    if found is None:
        raise HTTPException(status_code=404, detail=f"artist {artist_id!r} is not in the index")
    return found


def create_app(
    settings: Settings | None = None, artifacts: Artifacts | None = None, store: WriteStore | None = None
) -> FastAPI:
    """Build the app; artifacts and the write store are opened in the lifespan unless given (by `cmar serve`)."""

    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded = artifacts or load_served(settings)
        writes = store or WriteStore(writes_db(settings))
        _, skipped = replay(loaded, writes)
        app.state.live = Live(writes, threading.Lock(), skipped)
        app.state.artifacts = loaded
        metrics.serving(loaded)
        yield
        app.state.artifacts = None
        writes.close()

    app = FastAPI(
        title="cmar: cross-modal artist retrieval",
        description="Similar artists from any mix of audio, tag and listening-data embeddings.",
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(read_access)],
        responses=ERROR_RESPONSES,
    )
    app.state.settings = settings
    app.state.reads_need_key = settings.read_key_required
    app.state.metrics = metrics = Metrics()
    app.include_router(writes_router)

    app.add_middleware(FastPaths)  # inner: sees requests after the ones below
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(Observe, metrics=metrics, log_requests=settings.access_log)  # outermost

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default handler echoes the input back, which fails to serialise NaN or
        # infinity (a 500); report where and what was expected, without the input.
        return JSONResponse(status_code=422, content={"detail": validation_errors(list(exc.errors()))})

    @app.get("/artists/{artist_id}/similar", response_model=SimilarResponse, tags=["similar"])
    async def similar(
        artist_id: ArtistId,
        artifacts: ArtifactsDep,
        request: Request,
        k: Annotated[int, Query(ge=1, le=MAX_K, description=f"number of results, 1 to {MAX_K}")] = 10,
    ) -> Response:
        """The k artists most similar to an indexed artist, the artist itself excluded."""
        overlay = artifacts.overlay  # one snapshot of the writes answers the whole request
        results = artifacts.quick_similar_json(artist_id, k, overlay)  # from the lists computed at build time
        if results is None:
            _served(artifacts, artist_id, overlay)  # the 404, decided on the same snapshot
            # a search: in a worker thread, so that FAISS can use the other cores
            results = await run_in_threadpool(artifacts.similar_json, artist_id, k, overlay)
        if results is None:  # unreachable: the snapshot serves the artist
            raise HTTPException(status_code=404, detail=f"artist {artist_id!r} is not in the index")
        body = similar_body(artist_id, k, results)
        overlay.cache.put((artist_id, k), body)
        return Response(body, media_type=JSON)

    @app.post("/similar", response_model=ColdStartResponse, tags=["similar"])
    async def similar_cold_start(query: SimilarQuery, artifacts: ArtifactsDep) -> Response:  # type: ignore[valid-type]
        """The k indexed artists most similar to an artist described by any subset of its modalities."""
        vectors, sets, unknown_tags = query_inputs(artifacts, query)
        results = hits_json(artifacts.search(encode_checked(artifacts, vectors, sets), query.k))  # type: ignore[attr-defined]
        return Response(
            cold_start_body([*vectors, *sets], unknown_tags, query.k, results),  # type: ignore[attr-defined]
            media_type=JSON,
        )

    @app.get("/artists/{artist_id}", response_model=Artist, tags=["artists"])
    def artist(artist_id: ArtistId, artifacts: ArtifactsDep) -> Artist:
        """An indexed artist's name and modalities."""
        name, modalities = _served(artifacts, artist_id)
        return Artist(artist_id=artist_id, name=name, modalities=modalities)

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Response:
        """Liveness: the process answers. Also the benchmark's ceiling: the cheapest answer the app gives."""
        return Response(HEALTHY, media_type=JSON)

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics: requests and latency by route and status, artists served, versions, writes."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/readyz", response_model=Readiness, tags=["health"])
    def readyz(artifacts: ArtifactsDep, request: Request) -> Readiness:
        """Readiness: artifacts are loaded; what model and index are served; whether writes can be stored."""
        live: Live = request.app.state.live
        problem = live.store.problem
        return Readiness(
            status="ready",
            model_version=artifacts.model.version,
            index_version=artifacts.index.version,
            n_artists=len(artifacts),
            modalities=list(artifacts.model.sessions),
            writes_available=problem is None,
            writes_problem=problem,
            skipped_writes=live.skipped,
        )

    return app
