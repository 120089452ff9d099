"""The application: its state, lifespan and error shape, `Front` before FastAPI.

The query endpoints live in `service.endpoints` (served by `service.front.Front`); FastAPI's
routes in `service.routes` (readiness, metrics) and `service.writes` (writes and swaps).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from core.store import WriteStore
from inference.tracks import TrackModel
from service import docs, web
from service.artifacts import Artifacts
from service.auth import read_access
from service.endpoints import endpoints
from service.front import Front
from service.maps import ServedMap
from service.observe import Metrics
from service.queries import validation_errors
from service.routes import documented
from service.routes import router as read_router
from service.schemas import ERROR_RESPONSES
from service.settings import Settings, get_settings, load_map, load_track_model, writes_db
from service.state import Live, Serving
from service.writes import load_served, replay
from service.writes import router as writes_router

log = logging.getLogger(__name__)


class CmarApp(FastAPI):
    """FastAPI whose ASGI entry is `front`: every request passes it first."""

    front: Front
    _openapi_model: str | None = None  # the model version the cached OpenAPI document's examples come from

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.front(scope, receive, send)

    async def fastapi(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI's own ASGI entry (routing, dependencies, its exception handlers)."""
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document: the query endpoints `Front` serves first (`service.routes`), then FastAPI's
        routes; request body examples from the served model (`service.docs.examples`), made anew after a swap."""
        artifacts = self.state.serving.artifacts
        version = None if artifacts is None else artifacts.model.version
        if self.openapi_schema is None or self._openapi_model != version:
            document = get_openapi(
                title=self.title,
                version=self.version,
                description=self.description,
                routes=[*documented.routes, *self.routes],
            )
            closed = self.state.serving.settings.read_key_required
            self.openapi_schema = docs.add_examples(document, docs.examples(artifacts, closed))
            self._openapi_model = version
        return self.openapi_schema


def create_app(
    settings: Settings | None = None,
    artifacts: Artifacts | None = None,
    store: WriteStore | None = None,
    tracks: TrackModel | None = None,
    served_map: ServedMap | None = None,
) -> CmarApp:
    """Build the app; artifacts, the write store, the track model and the map (if set) are opened in the
    lifespan unless given (by `cmar serve`)."""
    settings = settings or get_settings()
    serving = Serving(settings=settings, metrics=Metrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded = artifacts or load_served(settings)
        writes = store or WriteStore(writes_db(settings))
        _, skipped = replay(loaded, writes)
        serving.live = Live(writes, skipped=skipped)
        serving.tracks = tracks or load_track_model(settings)
        serving.map = served_map or load_map(settings)
        serving.artifacts = loaded
        serving.metrics.serving(loaded)
        yield
        serving.artifacts = None
        writes.close()

    app = CmarApp(
        title="cmar: cross-modal artist retrieval",
        description="Similar artists from any mix of audio, tag and listening-data embeddings.",
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(read_access)],
        responses=ERROR_RESPONSES,
        docs_url=None,  # served from packaged assets instead of a CDN (service.docs)
        redoc_url=None,
    )
    docs.mount(app)
    web.mount(app)
    app.state.serving = serving
    app.router.redirect_slashes = False  # a trailing slash is a 404, not a redirect to the client's Host header
    app.include_router(read_router)
    app.include_router(writes_router)
    # FastAPI's routes one by one (an included router is one opaque entry of app.routes)
    routes = [*(r for r in app.routes if hasattr(r, "path")), *read_router.routes, *writes_router.routes]
    app.front = Front(app.fastapi, serving, endpoints(), serving.metrics, routes=lambda: routes)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default handler echoes the input back, which fails to serialise NaN or
        # infinity (a 500); report where and what was expected, without the input.
        return JSONResponse(status_code=422, content={"detail": validation_errors(list(exc.errors()))})

    return app
