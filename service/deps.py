"""Typed dependencies: what handlers receive instead of reading `request.app.state` (tests override them).

All are `async def`: FastAPI runs a plain `def` dependency in a worker thread, a hop per
dependency per request for what is an attribute read.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from service.artifacts import Artifacts
from service.observe import Metrics
from service.settings import Settings
from service.state import Live, Serving


async def get_serving(request: Request) -> Serving:
    """The app's state."""
    return request.app.state.serving  # type: ignore[no-any-return]


ServingDep = Annotated[Serving, Depends(get_serving)]


async def get_artifacts(serving: ServingDep) -> Artifacts:
    """The artifacts served when the request started (503 before the lifespan loaded them)."""
    if serving.artifacts is None:
        raise HTTPException(status_code=503, detail="artifacts are not loaded yet")
    return serving.artifacts


async def get_live(serving: ServingDep) -> Live:
    """The write database and its lock (503 before the lifespan opened them)."""
    if serving.live is None:
        raise HTTPException(status_code=503, detail="the write database is not open yet")
    return serving.live


async def get_settings_of(serving: ServingDep) -> Settings:
    """The app's settings."""
    return serving.settings


async def get_metrics(serving: ServingDep) -> Metrics:
    """The app's Prometheus metrics."""
    return serving.metrics


ArtifactsDep = Annotated[Artifacts, Depends(get_artifacts)]
LiveDep = Annotated[Live, Depends(get_live)]
SettingsDep = Annotated[Settings, Depends(get_settings_of)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
