"""The FastAPI application: similar artists by id, cold-start queries, health."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import numpy as np
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from core.modalities import ModalityKind
from service.artifacts import Artifacts
from service.middleware import HEALTHY, JSON, FastPaths, VersionHeaders
from service.responses import cold_start_body, similar_body
from service.schemas import (
    Artist,
    ColdStartResponse,
    Health,
    Readiness,
    SimilarQuery,
    SimilarResponse,
)
from service.settings import MAX_K, Settings, get_settings

log = logging.getLogger(__name__)


def unprocessable(loc: list[str | int], msg: str) -> HTTPException:
    """A 422 in the same shape as FastAPI's validation errors: where, and what was expected."""
    return HTTPException(status_code=422, detail=[{"loc": loc, "msg": msg, "type": "value_error"}])


def _error(error: Any) -> dict[str, Any]:
    msg = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if tuple(error.get("loc", ())) == ("body",) and error.get("type") == "missing":
        msg = "a JSON body is required: an object with any of the modalities and k"
    return {"loc": list(error.get("loc", ())), "msg": msg, "type": error.get("type", "value_error")}


async def get_artifacts(request: Request) -> Artifacts:
    """The artifacts loaded in the lifespan."""
    artifacts: Artifacts | None = getattr(request.app.state, "artifacts", None)
    if artifacts is None:
        raise HTTPException(status_code=503, detail="artifacts are not loaded yet")
    return artifacts


ArtifactsDep = Annotated[Artifacts, Depends(get_artifacts)]
ArtistId = Annotated[str, Path(description="the artist's id in the catalogue", min_length=1)]


def _cold_start(artifacts: Artifacts, vectors: dict[str, np.ndarray], sets: SetInputs, k: int) -> bytes:
    """Encode, fuse and search a checked cold-start query: the JSON results array."""
    encoded = artifacts.encode_query(vectors, sets)
    if not np.isfinite(encoded).all() or not encoded.any():
        given = ", ".join([*vectors, *sets])
        raise unprocessable(
            ["body"],
            f"the model cannot encode these {given} values: they are far outside "
            "the range of its training data (overflow)",
        )
    return artifacts.hits_json(artifacts.search(encoded, k))


def _row_of(artifacts: Artifacts, artist_id: str) -> int:
    row = artifacts.index.row_of.get(artist_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"artist {artist_id!r} is not in the index")
    return row


SetInputs = dict[str, tuple[np.ndarray, np.ndarray]]  # modality -> (item vectors (T, d), raw weights (T,))


def _query_inputs(artifacts: Artifacts, query: Any) -> tuple[dict[str, np.ndarray], SetInputs, list[str]]:
    """Check a cold-start query against the model and turn it into encoder inputs."""
    model = artifacts.model
    vectors: dict[str, np.ndarray] = {}
    sets: SetInputs = {}
    unknown_tags: list[str] = []
    for name, value in query.given().items():
        loc: list[str | int] = ["body", name]
        if name not in model.sessions:
            raise unprocessable(loc, f"this model has no {name} encoder; it accepts {', '.join(model.sessions)}")
        dim = model.input_dim(name)
        if model.kind(name) is ModalityKind.VECTOR:
            vectors[name] = _finite(loc, value, dim)
            continue
        if isinstance(value, dict) or isinstance(value[0], str):
            weighted = value if isinstance(value, dict) else dict.fromkeys(value, 1.0)
            vocab = model.vocabularies[name]
            known = [t for t in weighted if t in vocab.index]
            unknown_tags = [t for t in weighted if t not in vocab.index]
            if not known:
                raise unprocessable(loc, f"none of the {len(weighted)} tag name(s) is in the model's vocabulary")
            order = sorted(known, key=lambda t: -weighted[t])  # heaviest first, as in the catalogue
            sets[name] = (vocab.vectors[[vocab.index[t] for t in order]], np.array([weighted[t] for t in order]))
        else:
            items = np.stack([_finite([*loc, i], v, dim) for i, v in enumerate(value)])
            sets[name] = (items, np.ones(len(items)))
    return vectors, sets, unknown_tags


def _finite(loc: list[str | int], value: list[float], dim: int) -> np.ndarray:
    if len(value) != dim:
        raise unprocessable(loc, f"expected a vector of {dim} numbers, got {len(value)}")
    arr = np.asarray(value, dtype=np.float64)
    if np.abs(arr).max(initial=0.0) > np.finfo(np.float32).max:
        raise unprocessable(loc, "values must be finite 32-bit floats (|x| < 3.4e38)")
    return arr.astype(np.float32)


def create_app(settings: Settings | None = None, artifacts: Artifacts | None = None) -> FastAPI:
    """Build the app; artifacts are loaded in the lifespan unless already loaded (by `cmar serve`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.artifacts = artifacts or Artifacts.load(settings or get_settings())
        yield
        app.state.artifacts = None

    app = FastAPI(
        title="cmar: cross-modal artist retrieval",
        description="Similar artists from any mix of audio, tag and listening-data embeddings.",
        version="0.1.0",
        lifespan=lifespan,
    )

    app.add_middleware(FastPaths)  # inner: sees requests after VersionHeaders
    app.add_middleware(VersionHeaders)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default handler echoes the input back, which fails to serialise NaN or
        # infinity (a 500); report where and what was expected, without the input.
        return JSONResponse(status_code=422, content={"detail": [_error(e) for e in exc.errors()]})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=500, content={"detail": "internal error; see the server log"})

    @app.get("/artists/{artist_id}/similar", response_model=SimilarResponse, tags=["similar"])
    async def similar(
        artist_id: ArtistId,
        artifacts: ArtifactsDep,
        k: Annotated[int, Query(ge=1, le=MAX_K, description=f"number of results, 1 to {MAX_K}")] = 10,
    ) -> Response:
        """The k artists most similar to an indexed artist, the artist itself excluded."""
        row = _row_of(artifacts, artist_id)
        if artifacts.precomputed(k):  # a slice of the list computed at build time: answered in the event loop
            results = artifacts.similar_json(row, k)
        else:  # a search: in a worker thread, so that FAISS can use the other cores
            results = await run_in_threadpool(artifacts.similar_json, row, k)
        return Response(similar_body(artist_id, k, results), media_type=JSON)

    @app.post("/similar", response_model=ColdStartResponse, tags=["similar"])
    async def similar_cold_start(query: SimilarQuery, artifacts: ArtifactsDep) -> Response:  # type: ignore[valid-type]
        """The k indexed artists most similar to an artist described by any subset of its modalities."""
        vectors, sets, unknown_tags = _query_inputs(artifacts, query)
        results = _cold_start(artifacts, vectors, sets, query.k)  # type: ignore[attr-defined]
        return Response(
            cold_start_body([*vectors, *sets], unknown_tags, query.k, results),  # type: ignore[attr-defined]
            media_type=JSON,
        )

    @app.get("/artists/{artist_id}", response_model=Artist, tags=["artists"])
    def artist(artist_id: ArtistId, artifacts: ArtifactsDep) -> Artist:
        """An indexed artist's name and modalities."""
        row = _row_of(artifacts, artist_id)
        index = artifacts.index
        return Artist(artist_id=artist_id, name=index.names[row], modalities=index.modalities[row])

    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> Response:
        """Liveness: the process answers. Also the benchmark's ceiling: the cheapest answer the app gives."""
        return Response(HEALTHY, media_type=JSON)

    @app.get("/readyz", response_model=Readiness, tags=["health"])
    def readyz(artifacts: ArtifactsDep) -> Readiness:
        """Readiness: artifacts are loaded; what model and index are served."""
        return Readiness(
            status="ready",
            model_version=artifacts.model.version,
            index_version=artifacts.index.version,
            n_artists=len(artifacts.index),
            modalities=list(artifacts.model.sessions),
        )

    return app
