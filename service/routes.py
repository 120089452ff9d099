"""The read routes: similar artists by id, cold-start queries, an artist, health, readiness, metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from service.artifacts import Artifacts
from service.deps import ArtifactsDep, LiveDep, MetricsDep
from service.live import Overlay
from service.middleware import HEALTHY, JSON
from service.queries import encode_checked, query_inputs
from service.responses import cold_start_body, similar_body
from service.schemas import Artist, ColdStartResponse, Health, Readiness, SimilarQuery, SimilarResponse
from service.search import hits_json, quick_similar_json, search, similar_json
from service.settings import MAX_K

router = APIRouter()

ArtistId = Annotated[str, Path(description="the artist's id in the catalogue", min_length=1)]
K = Annotated[int, Query(ge=1, le=MAX_K, description=f"number of results, 1 to {MAX_K}")]


def served(artifacts: Artifacts, artist_id: str, overlay: Overlay | None = None) -> tuple[str, list[str]]:
    """An artist's name and modalities in one snapshot of the writes; a 404 if it is not served."""
    found = artifacts.artist(artist_id, overlay)
    if found is None:
        raise HTTPException(status_code=404, detail=f"artist {artist_id!r} is not in the index")
    return found


@router.get("/artists/{artist_id}/similar", response_model=SimilarResponse, tags=["similar"])
async def similar(artist_id: ArtistId, artifacts: ArtifactsDep, k: K = 10) -> Response:
    """The k artists most similar to an indexed artist, the artist itself excluded."""
    overlay = artifacts.overlay  # one snapshot of the writes answers the whole request
    results = quick_similar_json(artifacts, artist_id, k, overlay)  # from the lists computed at build time
    if results is None:
        served(artifacts, artist_id, overlay)  # the 404, decided on the same snapshot
        # a search: in a worker thread, so that FAISS can use the other cores
        results = await run_in_threadpool(similar_json, artifacts, artist_id, k, overlay)
    if results is None:  # unreachable: the snapshot serves the artist
        raise HTTPException(status_code=404, detail=f"artist {artist_id!r} is not in the index")
    body = similar_body(artist_id, k, results)
    overlay.cache.put((artist_id, k), body)
    return Response(body, media_type=JSON)


@router.post("/similar", response_model=ColdStartResponse, tags=["similar"])
async def similar_cold_start(query: SimilarQuery, artifacts: ArtifactsDep) -> Response:  # type: ignore[valid-type]
    """The k indexed artists most similar to an artist described by any subset of its modalities."""
    vectors, sets, unknown_tags = query_inputs(artifacts, query)
    results = hits_json(search(artifacts, encode_checked(artifacts, vectors, sets), query.k))  # type: ignore[attr-defined]
    return Response(
        cold_start_body([*vectors, *sets], unknown_tags, query.k, results),  # type: ignore[attr-defined]
        media_type=JSON,
    )


@router.get("/artists/{artist_id}", response_model=Artist, tags=["artists"])
async def artist(artist_id: ArtistId, artifacts: ArtifactsDep) -> Artist:
    """An indexed artist's name and modalities."""
    name, modalities = served(artifacts, artist_id)
    return Artist(artist_id=artist_id, name=name, modalities=modalities)


@router.get("/healthz", response_model=Health, tags=["health"])
async def healthz() -> Response:
    """Liveness: the process answers."""
    return Response(HEALTHY, media_type=JSON)


@router.get("/metrics", tags=["health"], response_class=PlainTextResponse)
async def prometheus_metrics(metrics: MetricsDep) -> Response:
    """Prometheus metrics: requests and latency by route and status, artists served, versions, writes."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/readyz", response_model=Readiness, tags=["health"])
async def readyz(artifacts: ArtifactsDep, live: LiveDep) -> Readiness:
    """Readiness: artifacts are loaded; what model and index are served; whether writes can be stored."""
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
