"""The FastAPI application: its state, lifespan, middleware and error shape; the routes live in
`service.routes` (reads) and `service.writes` (writes and swaps)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from core.store import WriteStore
from service.artifacts import Artifacts
from service.auth import read_access
from service.middleware import BodyLimit, FastPaths
from service.observe import Metrics, Observe
from service.routes import router as read_router
from service.schemas import ERROR_RESPONSES
from service.settings import Settings, get_settings, writes_db
from service.state import Live, Serving
from service.writes import load_served, replay
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


def create_app(
    settings: Settings | None = None, artifacts: Artifacts | None = None, store: WriteStore | None = None
) -> FastAPI:
    """Build the app; artifacts and the write store are opened in the lifespan unless given (by `cmar serve`)."""
    settings = settings or get_settings()
    serving = Serving(settings=settings, metrics=Metrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded = artifacts or load_served(settings)
        writes = store or WriteStore(writes_db(settings))
        _, skipped = replay(loaded, writes)
        serving.live = Live(writes, skipped=skipped)
        serving.artifacts = loaded
        serving.metrics.serving(loaded)
        yield
        serving.artifacts = None
        writes.close()

    app = FastAPI(
        title="cmar: cross-modal artist retrieval",
        description="Similar artists from any mix of audio, tag and listening-data embeddings.",
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(read_access)],
        responses=ERROR_RESPONSES,
    )
    app.state.serving = serving
    app.include_router(read_router)
    app.include_router(writes_router)

    app.add_middleware(FastPaths)  # inner: sees requests after the ones below
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(Observe, metrics=serving.metrics, log_requests=settings.access_log)  # outermost

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default handler echoes the input back, which fails to serialise NaN or
        # infinity (a 500); report where and what was expected, without the input.
        return JSONResponse(status_code=422, content={"detail": validation_errors(list(exc.errors()))})

    return app
