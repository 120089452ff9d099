"""FastAPI's read routes (readiness, metrics), and the OpenAPI declarations of the query endpoints.

The query endpoints are served by `service.front` (`service.endpoints`); the functions of
`documented` only declare their parameters, bodies and answers for the OpenAPI document and
the /docs page. They are never mounted, so no request reaches them; a test checks that the
two tables list the same routes.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import ArtifactsDep, LiveDep, MetricsDep
from service.schemas import (
    ERROR_RESPONSES,
    MAX_MAP_OFFSET,
    MAX_MAP_POINTS,
    MAX_OFFSET,
    Artist,
    ArtistMatches,
    ColdStartBatch,
    ColdStartBatchResponse,
    ColdStartResponse,
    Health,
    MapPage,
    Readiness,
    SimilarBatch,
    SimilarBatchResponse,
    SimilarOptions,
    SimilarQuery,
    SimilarResponse,
    TagMatches,
    TrackClustersQuery,
    TrackClustersResponse,
)
from service.settings import MAX_K

router = APIRouter()
documented = APIRouter(responses=ERROR_RESPONSES)

ArtistId = Annotated[str, Path(description="the artist's id in the catalogue", min_length=1)]
K = Annotated[int, Query(ge=1, le=MAX_K, description=f"number of results, 1 to {MAX_K}")]


_OPTIONS = SimilarOptions.model_fields


@documented.get("/artists/{artist_id}/similar", response_model=SimilarResponse, tags=["similar"])
async def similar(
    artist_id: ArtistId,
    k: K = 10,
    modalities: Annotated[
        list[str] | None,
        Query(description="only results indexed with all of these (repeated, or comma-separated: cf,tag)"),
    ] = None,
    exclude: Annotated[
        list[str] | None, Query(description="ids never to return (repeated: exclude=a&exclude=b)")
    ] = None,
    min_popularity: Annotated[float | None, Query(ge=0, description=_OPTIONS["min_popularity"].description)] = None,
    max_popularity: Annotated[float | None, Query(ge=0, description=_OPTIONS["max_popularity"].description)] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description=_OPTIONS["offset"].description)] = 0,
    order: Annotated[Literal["similar", "dissimilar"], Query(description=_OPTIONS["order"].description)] = "similar",
    explain: Annotated[bool, Query(description=_OPTIONS["explain"].description)] = False,
) -> None:
    """The k artists most similar to an indexed artist, the artist itself excluded.

    Filters keep only the results that pass them (an artist of unknown popularity fails either
    popularity bound); `offset` pages; `order=dissimilar` gives the far end of the ranking.
    With any of them the whole ranking is computed (exact; slower than the plain list).
    `explain=true` adds to each result the cosines of every pair of modalities, the pair that
    contributed most, and the tags the two artists share.
    """


@documented.post("/similar", response_model=ColdStartResponse, tags=["similar"])
async def similar_cold_start(query: SimilarQuery) -> None:  # type: ignore[valid-type]
    """The k indexed artists most similar to an artist described by any subset of its modalities.

    Concurrent queries are encoded and searched together; each gets the answer it would get alone.
    The body takes the options of GET /artists/{artist_id}/similar as fields (modalities, exclude,
    min_popularity, max_popularity, offset, order, explain).
    """


@documented.post("/artists/similar", response_model=SimilarBatchResponse, tags=["similar"])
async def similar_batch(query: SimilarBatch) -> None:
    """The similar lists of up to 100 served artists in one call, with one k and the same options.

    Answers in the order asked (each id once); ids not served are listed in `missing`.
    """


@documented.post("/similar/batch", response_model=ColdStartBatchResponse, tags=["similar"])
async def similar_cold_start_batch(query: ColdStartBatch) -> None:
    """Up to 100 cold-start queries in one call, each answered as POST /similar answers it.

    A query the model cannot take is a 422 located at ["body", "queries", i, ...]; then none is answered.
    """


@documented.get("/artists/{artist_id}", response_model=Artist, tags=["artists"])
async def artist(artist_id: ArtistId) -> None:
    """An indexed artist's name and modalities."""


@documented.get("/artists", response_model=ArtistMatches, tags=["artists"])
async def find_artists(
    q: Annotated[str, Query(min_length=1, max_length=200, description="a name, or its beginning; typos tolerated")],
    limit: Annotated[int, Query(ge=1, le=100, description="most results, 1 to 100")] = 10,
) -> None:
    """Served artists found by name: case, accents and punctuation ignored, prefixes and a typo or two matched.

    Ranked by match quality, then popularity; written artists are found as soon as they are written.
    """


@documented.get("/tags", response_model=TagMatches, tags=["similar"])
async def find_tags(
    q: Annotated[str, Query(max_length=200, description="the tags' beginning; compared in canonical form")] = "",
    limit: Annotated[int, Query(ge=1, le=100, description="most results, 1 to 100")] = 10,
) -> None:
    """The tags a cold-start query may use: the model's vocabulary beginning with `q`, most carried first."""


@documented.post("/tracks/clusters", response_model=TrackClustersResponse, tags=["tracks"])
async def track_clusters(query: TrackClustersQuery) -> None:
    """Tracks filed under one name, split into the artists behind them (Royo-Letelier et al. 2018).

    Each track's audio is embedded by the track model (CMAR_TRACK_MODEL_DIR) and the tracks are
    clustered by Ward linkage at the model's threshold, or the one given. 404 when the service
    has no track model; at most 2,000 tracks per request.
    """


@documented.get("/map", response_model=MapPage, tags=["map"])
async def served_map(
    offset: Annotated[int, Query(ge=0, le=MAX_MAP_OFFSET, description="points to skip (paging)")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_MAP_POINTS, description=f"most points, 1 to {MAX_MAP_POINTS:,}")] = 1000,
    box: Annotated[str | None, Query(description="only points inside x0,y0,x1,y1")] = None,
) -> None:
    """The served artists' positions on the 2D map (CMAR_MAP_DIR, from cmar map), paged or bounded by a box.

    Artists the map folder does not hold (written through the API, or indexed after the map)
    are placed at the median position of their nearest mapped artists (`service.maps.PLACE_K`).
    404 without a map.
    """


@documented.get("/healthz", response_model=Health, tags=["health"])
async def healthz() -> None:
    """Liveness: the process answers (no API key needed, even when reads need one)."""


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
