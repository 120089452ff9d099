"""The query endpoints: similar artists by id, cold-start queries, an artist, liveness.

Each query kind is one `Endpoint`: its method and path template, the checks every request to
it passes (the read key, or any a deployment adds), and one answer function that parses its
parameters, reads one snapshot of the served artifacts and writes, searches or slices, merges
the written artists and serialises. `service.front.Front` is the only way a request reaches
them: it matches the path, runs the checks, then the answer. The whole-body cache and the
build's precomputed lists sit inside the answer, behind the checks, so nothing answers a
request that the checks did not pass. FastAPI serves the other routes (writes, swaps,
readiness, metrics, the OpenAPI document); `service.routes` documents these in that document.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
import orjson
from fastapi import HTTPException
from pydantic import Field, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive

from core.names import normalize_tag
from inference.tracks import Clustering, TrackInputError, ward_clusters
from service.artifacts import Artifacts
from service.auth import check_read
from service.live import Overlay
from service.names import search_key
from service.queries import query_inputs, unprocessable, validation_errors
from service.responses import cold_start_body, similar_body
from service.schemas import SimilarQuery, TrackClustersQuery
from service.search import find_by_name, hits_json, quick_similar_json, searched_json
from service.settings import MAX_K
from service.state import Serving

HEALTHY = b'{"status":"ok"}'
DEFAULT_K = 10


@dataclass(slots=True)
class Call:
    """One request to an endpoint: the app's state, the artifacts it started on, and what the client sent."""

    serving: Serving
    loaded: Artifacts | None  # taken once when the request started; a swap does not change it
    params: dict[str, str]  # path parameters by name
    query: bytes  # the raw query string
    headers: list[tuple[bytes, bytes]]  # lower-case names, as ASGI gives them
    receive: Receive

    @property
    def artifacts(self) -> Artifacts:
        """The artifacts answering this request (503 before the lifespan loaded them)."""
        if self.loaded is None:
            raise HTTPException(status_code=503, detail="artifacts are not loaded yet")
        return self.loaded

    def header(self, name: str) -> str | None:
        """A header's value (the first), by lower-case name."""
        key = name.encode()
        return next((v.decode("latin-1") for k, v in self.headers if k == key), None)

    async def body(self) -> bytes:
        """The whole body (a 413 past the size limit, counted as it arrives)."""
        limit = self.serving.settings.max_body_bytes
        declared = self.header("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large(str(int(declared)), limit)
        chunks, size = [], 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise HTTPException(status_code=400, detail="the client closed the connection before the body ended")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large(f"more than {limit}", limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def too_large(size: str, limit: int) -> HTTPException:
    """The 413 of a body over the limit."""
    return HTTPException(
        status_code=413, detail=f"the request body has {size} bytes; the limit is {limit} bytes (CMAR_MAX_BODY_BYTES)"
    )


Check = Callable[[Call], None]  # raises an HTTPException to refuse the request
Answer = Callable[[Call], Awaitable[bytes]]  # the JSON body of a 200


@dataclass
class Endpoint:
    """A query kind: method, path template, checks in order, and its answer."""

    method: str
    template: str  # "/artists/{artist_id}/similar": a parameter is one or more characters other than "/"
    answer: Answer
    checks: list[Check] = field(default_factory=list)

    def __post_init__(self) -> None:
        parts = re.split(r"\{(\w+)\}", self.template)
        regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts))
        self.pattern = re.compile(f"^{regex}$")

    async def __call__(self, call: Call) -> bytes:
        for check in self.checks:
            check(call)
        return await self.answer(call)


def read_access(call: Call) -> None:
    """The read key, if the settings close reads (`service.auth.check_read`)."""
    check_read(call.serving.settings, call.header)


# Parameters: one parser each.

_K = TypeAdapter(Annotated[int, Field(ge=1, le=MAX_K)])
_K_CACHE: dict[bytes, int] = {}  # short query strings already parsed to a valid k (bounded: see query_k)
_K_CACHE_SIZE = 4096
_K_CACHE_KEY_BYTES = 32  # at most 4096 x 32 bytes of keys, whatever clients send


def query_k(query: bytes) -> int:
    """`k` from a raw query string: 10 if absent; the last value if repeated; 422 unless an integer 1..MAX_K.

    Parsed as FastAPI parses a query parameter (percent-decoding, '+' as space, pydantic's
    lax integers: " 5", "05", "5.0"); other parameters are ignored. The first few thousand
    distinct short query strings are remembered once valid.
    """
    known = _K_CACHE.get(query)
    if known is not None:
        return known
    given = query_params(query).get("k")
    if given is None:
        return DEFAULT_K
    try:
        k = _K.validate_python(given)
    except ValidationError as exc:
        raise HTTPException(
            status_code=422, detail=validation_errors([{**e, "loc": ("query", "k")} for e in exc.errors()])
        ) from None
    if len(_K_CACHE) < _K_CACHE_SIZE and len(query) <= _K_CACHE_KEY_BYTES:
        _K_CACHE[query] = k
    return k


def query_params(query: bytes) -> dict[str, str]:
    """A raw query string's parameters as FastAPI reads them: percent-decoded, the last of a repeated name."""
    return dict(urllib.parse.parse_qsl(query.decode("latin-1"), keep_blank_values=True))


MAX_MATCHES = 100  # results of one name search
_LIMIT = TypeAdapter(Annotated[int, Field(ge=1, le=MAX_MATCHES)])
MAX_QUERY_CHARS = 200


def name_query(call: Call) -> tuple[str, str, int]:
    """`q` (as given, and its search form) and `limit` of GET /artists; a 422 naming the parameter otherwise."""
    params = query_params(call.query)
    q = params.get("q")
    if q is None:
        raise unprocessable(["query", "q"], "a name to search for is required: ?q=TEXT")
    if len(q) > MAX_QUERY_CHARS:
        raise unprocessable(["query", "q"], f"at most {MAX_QUERY_CHARS} characters, got {len(q)}")
    key = search_key(q)
    if not key:
        raise unprocessable(["query", "q"], "must hold a letter or a digit")
    return q, key, _limit(params)


def _limit(params: dict[str, str]) -> int:
    """`limit` of a search: 10 if absent; a 422 unless an integer 1..MAX_MATCHES."""
    try:
        return _LIMIT.validate_python(params.get("limit", "10"))
    except ValidationError as exc:
        raise HTTPException(
            status_code=422, detail=validation_errors([{**e, "loc": ("query", "limit")} for e in exc.errors()])
        ) from None


async def cold_start_query(call: Call) -> Any:
    """The body of POST /similar, parsed and validated in one pass from its bytes (a 422 naming the field)."""
    return await json_body(call, SimilarQuery)


async def json_body(call: Call, model: Any) -> Any:
    """A JSON body parsed and validated by a pydantic model in one pass: 400 if unreadable, 422 naming the field."""
    kind = call.header("content-type")
    if kind is not None and "json" not in kind.lower():
        raise unprocessable(["body"], f"expected a JSON body (Content-Type: application/json), got {kind!r}")
    body = await call.body()
    if not body.strip():
        raise HTTPException(status_code=422, detail=validation_errors([{"loc": ("body",), "type": "missing"}]))
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(status_code=400, detail=f"the body is not UTF-8 text (byte {exc.start})") from None
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_input=False)]
        messages = [str(e["msg"]) for e in errors if e["type"] == "json_invalid"]
        unreadable = [m for m in messages if _UNREADABLE.search(m)]
        if unreadable:  # valid JSON syntax that no parser should be asked to hold
            raise HTTPException(status_code=400, detail=f"the body is not readable JSON: {unreadable[0]}") from None
        raise HTTPException(status_code=422, detail=validation_errors(errors)) from None


_UNREADABLE = re.compile(r"recursion limit|out of range")  # nested too deeply, a number too long to read


def served(artifacts: Artifacts, artist_id: str, overlay: Overlay | None = None) -> tuple[str, list[str]]:
    """An artist's name and modalities in one snapshot of the writes; a 404 if it is not served."""
    found = artifacts.artist(artist_id, overlay)
    if found is None:
        raise HTTPException(status_code=404, detail=f"artist {artist_id!r} is not in the index")
    return found


# Answers: one function per query kind.


async def similar(call: Call) -> bytes:
    """GET /artists/{artist_id}/similar: the k artists most similar to a served artist, itself excluded.

    From one snapshot of the writes: the body kept for (artist, k) if any; else a slice of
    the build's precomputed list merged with the written artists (`quick_similar_json`);
    else a search, in a worker thread so that a large index's search leaves the event loop free.
    """
    artist_id, k = call.params["artist_id"], query_k(call.query)
    artifacts = call.artifacts
    overlay = artifacts.overlay
    key = (artist_id, k)  # validated parameters only: junk query strings never make cache entries
    body = overlay.cache.get(key)
    if body is not None:
        return body
    results = quick_similar_json(artifacts, artist_id, k, overlay)
    if results is None:
        served(artifacts, artist_id, overlay)  # the 404, decided on the same snapshot
        results = await run_in_threadpool(searched_json, artifacts, artist_id, k, overlay)
        if results is None:  # unreachable: the snapshot serves the artist
            raise HTTPException(status_code=404, detail=f"artist {artist_id!r} is not in the index")
    body = similar_body(artist_id, k, results)
    overlay.cache.put(key, body)
    return body


async def cold_start(call: Call) -> bytes:
    """POST /similar: the k served artists most similar to an artist given by any subset of its modalities.

    Encoded and searched with the queries that arrive with it (`service.batching`); the
    answer is the one it would get alone.
    """
    query = await cold_start_query(call)
    artifacts = call.artifacts
    inputs = query_inputs(artifacts, query)
    hits = await call.serving.batcher.hits(artifacts, inputs, query.k)
    return cold_start_body(inputs.modalities, inputs.unknown_tags, query.k, hits_json(hits))


async def artist(call: Call) -> bytes:
    """GET /artists/{artist_id}: a served artist's name and modalities."""
    artist_id = call.params["artist_id"]
    name, modalities = served(call.artifacts, artist_id)
    return orjson.dumps({"artist_id": artist_id, "name": name, "modalities": modalities})


async def find_artists(call: Call) -> bytes:
    """GET /artists?q=TEXT&limit=N: served artists found by name (`service.names`), best first."""
    q, key, limit = name_query(call)
    artifacts = call.artifacts
    if not artifacts.names.ready:  # the first search makes the index (a second per 100,000 names): off the loop
        await run_in_threadpool(artifacts.names.get)
    results = find_by_name(artifacts, key, limit)
    return orjson.dumps({"q": q, "results": results})


async def find_tags(call: Call) -> bytes:
    """GET /tags?q=PREFIX&limit=N: the model's tags beginning with a prefix (canonical form), most carried first."""
    params = query_params(call.query)
    q = params.get("q", "")
    if len(q) > MAX_QUERY_CHARS:
        raise unprocessable(["query", "q"], f"at most {MAX_QUERY_CHARS} characters, got {len(q)}")
    try:
        prefix = normalize_tag(q)
    except ValueError as exc:
        raise unprocessable(["query", "q"], str(exc)) from None
    limit = _limit(params)
    return orjson.dumps({"q": q, "results": call.artifacts.tags.find(prefix, limit)})


async def track_clusters(call: Call) -> bytes:
    """POST /tracks/clusters: tracks filed under one name split into the artists behind them.

    Embedded by the track model, clustered by Ward linkage at its threshold (or the one given),
    in a worker thread (`inference.tracks`; Royo-Letelier et al. 2018, Section 3.3). A 404 when
    the service runs without a track model, a 422 naming the track whose audio is not the
    model's input width.
    """
    model = call.serving.tracks
    if model is None:
        raise HTTPException(
            status_code=404,
            detail="this service has no track model: start it with CMAR_TRACK_MODEL_DIR=DIR (from cmar tracks train)",
        )
    query = await json_body(call, TrackClustersQuery)
    first: dict[str, int] = {}
    for i, track in enumerate(query.tracks):
        if first.setdefault(track.id, i) != i:
            raise unprocessable(
                ["body", "tracks", i, "id"], f"track id {track.id!r} is given twice (first at {first[track.id]})"
            )
        if len(track.audio) != model.input_dim:
            raise unprocessable(
                ["body", "tracks", i, "audio"],
                f"expected {model.input_dim} numbers (the track model's input), got {len(track.audio)}",
            )
    threshold = query.threshold or model.threshold

    def cluster() -> Clustering:
        return ward_clusters(model.embed(np.asarray([t.audio for t in query.tracks], dtype=np.float64)), threshold)

    try:
        clustering = await run_in_threadpool(cluster)
    except TrackInputError as exc:
        raise unprocessable(
            ["body", "tracks", int(exc.rows[0]), "audio"],
            "values too large for the track model (beyond float32, or its embedding overflows); "
            "give features in the units the model was trained on",
        ) from None
    ids = [t.id for t in query.tracks]
    clusters = [
        {"cluster": c, "track_ids": [ids[i] for i in np.flatnonzero(clustering.labels == c).tolist()]}
        for c in range(clustering.n_clusters)
    ]
    return orjson.dumps(
        {
            "track_model": model.version,
            "threshold": threshold,
            "n_clusters": clustering.n_clusters,
            "confidence": clustering.confidence,
            "clusters": clusters,
        }
    )


async def healthz(call: Call) -> bytes:
    """GET /healthz: the process answers."""
    return HEALTHY


def endpoints() -> dict[str, Endpoint]:
    """A fresh table of the query endpoints, by name (each app has its own: checks can be added per app).

    Order matters only between templates that could match the same path; these cannot.
    """
    return {
        "healthz": Endpoint("GET", "/healthz", healthz),  # liveness probes carry no key
        "similar": Endpoint("GET", "/artists/{artist_id}/similar", similar, [read_access]),
        "cold_start": Endpoint("POST", "/similar", cold_start, [read_access]),
        "artist": Endpoint("GET", "/artists/{artist_id}", artist, [read_access]),
        "find_artists": Endpoint("GET", "/artists", find_artists, [read_access]),
        "find_tags": Endpoint("GET", "/tags", find_tags, [read_access]),
        "track_clusters": Endpoint("POST", "/tracks/clusters", track_clusters, [read_access]),
    }
