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

import functools
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
from service.batching import answer_batch
from service.explain import Side, explained_results, side_of
from service.live import Overlay
from service.names import search_key
from service.queries import (
    QueryInputs,
    encode_checked,
    query_inputs,
    unprocessable,
    validation_errors,
)
from service.ranking import ranked_page
from service.responses import cold_start_body, similar_body
from service.schemas import (
    MAX_MAP_OFFSET,
    MAX_MAP_POINTS,
    SIMILAR_OPTIONS,
    ColdStartBatch,
    SimilarBatch,
    SimilarOptions,
    SimilarQuery,
    TrackClustersQuery,
)
from service.search import (
    find_by_name,
    hits_json,
    prior_weight,
    quick_similar_json,
    search_many,
    searched_json,
    similar_json,
)
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
    lax integers: " 5", "05", "5.0"); other parameters are ignored.
    """
    return similar_params(query)[0]


def similar_params(query: bytes) -> tuple[int, SimilarOptions | None]:
    """`k` (`query_k`) and the options of GET /artists/{id}/similar (None when none is given).

    Options as `SimilarOptions`: `modalities` repeated or comma-separated, `exclude` repeated
    (ids may hold commas), the others once (the last if repeated); a 422 naming the parameter.
    The first few thousand distinct short query strings without options are remembered.
    """
    known = _K_CACHE.get(query)
    if known is not None:
        return known, None
    pairs = query_pairs(query)
    params = dict(pairs)
    k = query_int(params, "k", _K, str(DEFAULT_K))
    options = _options(pairs, params)
    if options is None and len(_K_CACHE) < _K_CACHE_SIZE and len(query) <= _K_CACHE_KEY_BYTES:
        _K_CACHE[query] = k
    return k, options


def _options(pairs: list[tuple[str, str]], params: dict[str, str]) -> SimilarOptions | None:
    """The similar options of a query string's parameters, validated (None when none is given)."""
    if not any(name in params for name in SIMILAR_OPTIONS):
        return None
    raw: dict[str, Any] = {name: params[name] for name in SIMILAR_OPTIONS if name in params}
    if "modalities" in params:
        raw["modalities"] = [m for name, v in pairs if name == "modalities" for m in v.split(",") if m]
    if "exclude" in params:
        raw["exclude"] = [v for name, v in pairs if name == "exclude"]
    try:
        return SimilarOptions.model_validate(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("query", *e["loc"])} for e in exc.errors(include_input=False)]
        raise HTTPException(status_code=422, detail=validation_errors(errors)) from None


def query_params(query: bytes) -> dict[str, str]:
    """A raw query string's parameters as FastAPI reads them: percent-decoded, the last of a repeated name."""
    return dict(query_pairs(query))


def query_pairs(query: bytes) -> list[tuple[str, str]]:
    """A raw query string's (name, value) pairs, percent-decoded; a 400 if an escape is not UTF-8."""
    try:
        return urllib.parse.parse_qsl(query.decode("latin-1"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise HTTPException(status_code=400, detail="the query string's percent-escapes are not UTF-8") from None


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
    return query_int(params, "limit", _LIMIT, "10")


def query_int(params: dict[str, str], name: str, adapter: TypeAdapter[int], default: str) -> int:
    """An integer query parameter validated by `adapter` (its default if absent); a 422 naming it otherwise."""
    try:
        return adapter.validate_python(params.get(name, default))
    except ValidationError as exc:
        raise HTTPException(
            status_code=422, detail=validation_errors([{**e, "loc": ("query", name)} for e in exc.errors()])
        ) from None


async def cold_start_query(call: Call) -> Any:
    """The body of POST /similar, parsed and validated in one pass from its bytes (a 422 naming the field)."""
    return await json_body(call, SimilarQuery, strict=True)


async def json_body(call: Call, model: Any, strict: bool = False) -> Any:
    """A JSON body parsed and validated by a pydantic model in one pass: 400 if unreadable, 422 naming the field.

    `strict`: JSON types as the schema says (a number is not `true` or `"1"`, a boolean not `1`).
    """
    kind = call.header("content-type")
    if kind is not None and "json" not in kind.lower():
        raise unprocessable(["body"], f"expected a JSON body (Content-Type: application/json), got {kind!r}")
    body = await call.body()
    if not body.strip():
        if model is SimilarQuery:  # its message names the modalities
            raise HTTPException(status_code=422, detail=validation_errors([{"loc": ("body",), "type": "missing"}]))
        required = [name for name, f in model.model_fields.items() if f.is_required()]
        raise unprocessable(["body"], f"a JSON body is required: an object with {' and '.join(required)}")
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(status_code=400, detail=f"the body is not UTF-8 text (byte {exc.start})") from None
    try:
        return model.model_validate_json(body, strict=strict or None)
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
    With options (`SimilarOptions`), `optioned_similar`.
    """
    artist_id = call.params["artist_id"]
    k, options = similar_params(call.query)
    artifacts = call.artifacts
    overlay = artifacts.overlay
    if options is not None and not options.plain:
        return await optioned_similar(artifacts, overlay, artist_id, k, options)
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


async def optioned_similar(
    artifacts: Artifacts, overlay: Overlay, artist_id: str, k: int, options: SimilarOptions
) -> bytes:
    """A similar list with filters, paging, the dissimilar order or explanations, in a worker thread.

    Filtered, paged or reversed lists rank every served artist (`service.ranking`); a list
    only explained is the plain one (`service.search.search`) with each result's explanation.
    """
    vector = artifacts.vector_of(artist_id, overlay)
    if vector is None:
        served(artifacts, artist_id, overlay)  # the 404
    assert vector is not None

    def answer() -> bytes:
        query = side_of(artifacts, artist_id, overlay) if options.explain else None
        head = {"artist_id": artist_id}
        slot = artifacts.slot_of(artist_id, overlay)
        return optioned_body(artifacts, overlay, vector, k, options, artist_id, query, head, slot=slot)

    return await run_in_threadpool(answer)


def optioned_body(
    artifacts: Artifacts,
    overlay: Overlay,
    vector: np.ndarray,
    k: int,
    options: SimilarOptions,
    exclude: str | None,
    query: Side | None,
    head: dict[str, Any],
    prior: float = 0.0,
    slot: int | None = None,
) -> bytes:
    """The body of a similar answer with options: `head`, k, offset, order, total (when ranked whole) and results.

    Filtered, paged or reversed answers rank every served artist (`service.ranking`); an answer
    only explained is the plain one with explanations, on an exact index (on a graph index,
    whose plain answers are approximate, it ranks whole too, so that its pages agree).
    """
    if options.filtered or artifacts.index.matrix is None:  # a graph index: every page from the exact ranking
        page = ranked_page(artifacts, vector, k, options, exclude, overlay, prior, slot)
        hits, total = page.hits, page.total
    else:
        slots = None if slot is None else [slot]
        hits = search_many(artifacts, vector[None, :], [k], [exclude], overlay, [prior], slots)[0]
        total = None
    body: dict[str, Any] = {**head, "k": k, "offset": options.offset, "order": options.order}
    if total is not None:
        body["total"] = total
    if options.explain:
        body["results"] = explained_results(artifacts, query, hits, overlay)
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    return orjson.dumps(body)[:-1] + b',"results":' + hits_json(hits) + b"}"


async def cold_start(call: Call) -> bytes:
    """POST /similar: the k served artists most similar to an artist given by any subset of its modalities.

    Encoded and searched with the queries that arrive with it (`service.batching`); the
    answer is the one it would get alone. With options (`SimilarOptions`) in the body,
    answered alone in a worker thread (`optioned_cold_start`).
    """
    query = await cold_start_query(call)
    artifacts = call.artifacts
    inputs = query_inputs(artifacts, query)
    if not query.plain:
        return await run_in_threadpool(optioned_cold_start, artifacts, artifacts.overlay, inputs, query)
    hits = await call.serving.batcher.hits(artifacts, inputs, query.k)
    return cold_start_body(inputs.modalities, inputs.unknown_tags, query.k, hits_json(hits))


def optioned_cold_start(artifacts: Artifacts, overlay: Overlay, inputs: QueryInputs, query: Any) -> bytes:
    """A cold-start answer with options: ranked with the same popularity prior as the plain one."""
    vector, own = encode_checked(artifacts, inputs)
    side = Side(own, inputs.items) if query.explain else None
    head = {"modalities": inputs.modalities, "unknown_tags": inputs.unknown_tags}
    prior = prior_weight(inputs.modalities, inputs.n_items("tag"))
    slot = artifacts.index.slot_of(inputs.modalities)
    return optioned_body(artifacts, overlay, vector, query.k, query.options(), None, side, head, prior, slot)


async def similar_batch(call: Call) -> bytes:
    """POST /artists/similar: the similar lists of up to 100 served artists, with one k and one set of options.

    In a worker thread, from one snapshot of the writes; ids not served are listed in `missing`.
    """
    batch = await json_body(call, SimilarBatch, strict=True)
    artifacts = call.artifacts
    overlay = artifacts.overlay
    options = batch.options()

    def answer() -> bytes:
        bodies, missing = [], []
        for artist_id in dict.fromkeys(batch.artist_ids):  # each id once, in the order first given
            vector = artifacts.vector_of(artist_id, overlay)
            if vector is None:
                missing.append(artist_id)
            elif options.plain:
                results = similar_json(artifacts, artist_id, batch.k, overlay)
                assert results is not None
                bodies.append(similar_body(artist_id, batch.k, results))
            else:
                query = side_of(artifacts, artist_id, overlay) if options.explain else None
                head = {"artist_id": artist_id}
                slot = artifacts.slot_of(artist_id, overlay)
                bodies.append(
                    optioned_body(artifacts, overlay, vector, batch.k, options, artist_id, query, head, slot=slot)
                )
        return b'{"k":%d,"answers":[' % batch.k + b",".join(bodies) + b'],"missing":' + orjson.dumps(missing) + b"}"

    return await run_in_threadpool(answer)


async def cold_start_batch(call: Call) -> bytes:
    """POST /similar/batch: up to 100 cold-start queries in one call, each answered as POST /similar would.

    The plain ones are encoded and searched together (`service.batching.answer_batch`), the
    ones with options one by one; a query the model cannot take is a 422 naming it
    (`["body", "queries", i, ...]`), and then no query is answered.
    """
    batch = await json_body(call, ColdStartBatch, strict=True)
    artifacts = call.artifacts
    overlay = artifacts.overlay
    inputs = [_located(i, functools.partial(query_inputs, artifacts, q)) for i, q in enumerate(batch.queries)]

    def answer() -> bytes:
        plain = [i for i, q in enumerate(batch.queries) if q.plain]
        found = answer_batch(
            artifacts, [inputs[i] for i in plain], [batch.queries[i].k for i in plain], overlay=overlay
        )
        bodies: dict[int, bytes] = {}
        for i, hits in zip(plain, found, strict=True):
            if isinstance(hits, HTTPException):
                raise _relocated(i, hits)
            q = inputs[i]
            bodies[i] = cold_start_body(q.modalities, q.unknown_tags, batch.queries[i].k, hits_json(hits))
        for i, query in enumerate(batch.queries):
            if i not in bodies:
                bodies[i] = _located(i, functools.partial(optioned_cold_start, artifacts, overlay, inputs[i], query))
        return b'{"answers":[' + b",".join(bodies[i] for i in range(len(batch.queries))) + b"]}"

    return await run_in_threadpool(answer)


def _located(i: int, work: Callable[[], Any]) -> Any:
    """`work()`, its 422 located under query i of a batch."""
    try:
        return work()
    except HTTPException as exc:
        raise _relocated(i, exc) from None


def _relocated(i: int, exc: HTTPException) -> HTTPException:
    """A query's 422 with each location under ["body", "queries", i]."""
    if not isinstance(exc.detail, list):
        return exc
    detail = [{**e, "loc": ["body", "queries", i, *list(e["loc"])[1:]]} for e in exc.detail]
    return HTTPException(status_code=exc.status_code, detail=detail)


async def artist(call: Call) -> bytes:
    """GET /artists/{artist_id}: a served artist's name, modalities and popularity (null when unknown)."""
    artist_id = call.params["artist_id"]
    artifacts = call.artifacts
    overlay = artifacts.overlay
    name, modalities = served(artifacts, artist_id, overlay)
    row = artifacts.base_row(artist_id, overlay)
    known = row is not None and artifacts.index.popularity is not None
    popularity = float(artifacts.index.popularity[row]) if known else None  # type: ignore[index]
    return orjson.dumps({"artist_id": artist_id, "name": name, "modalities": modalities, "popularity": popularity})


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


_MAP_LIMIT = TypeAdapter(Annotated[int, Field(ge=1, le=MAX_MAP_POINTS)])
_MAP_OFFSET = TypeAdapter(Annotated[int, Field(ge=0, le=MAX_MAP_OFFSET)])


def _map_params(params: dict[str, str]) -> tuple[int, int, tuple[float, float, float, float] | None]:
    """`offset`, `limit` and `box` (x0,y0,x1,y1) of GET /map; a 422 naming the parameter otherwise."""
    offset = query_int(params, "offset", _MAP_OFFSET, "0")
    limit = query_int(params, "limit", _MAP_LIMIT, "1000")
    box = None
    if "box" in params:
        try:
            x0, y0, x1, y1 = (float(v) for v in params["box"].split(","))
        except ValueError:
            raise unprocessable(["query", "box"], "expected four numbers x0,y0,x1,y1") from None
        if not all(np.isfinite([x0, y0, x1, y1])) or x0 > x1 or y0 > y1:
            raise unprocessable(["query", "box"], "expected finite x0 <= x1 and y0 <= y1")
        box = (x0, y0, x1, y1)
    return offset, limit, box


async def served_map(call: Call) -> bytes:
    """GET /map: the served artists' 2D positions (`service.maps`), paged or bounded by a box.

    Built-index artists in index order, then written ones; each point says whether the map
    holds it or it was placed by its neighbours. A 404 when the service has no map.
    """
    the_map = call.serving.map
    if the_map is None:
        raise HTTPException(
            status_code=404, detail="this service has no map: start it with CMAR_MAP_DIR=DIR (from cmar map)"
        )
    offset, limit, box = _map_params(query_params(call.query))
    artifacts = call.artifacts
    overlay = artifacts.overlay
    index = artifacts.index

    def answer() -> bytes:
        return orjson.dumps(the_map.page(index, overlay, offset, limit, box), option=orjson.OPT_SERIALIZE_NUMPY)

    return await run_in_threadpool(answer)


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
        "cold_start_batch": Endpoint("POST", "/similar/batch", cold_start_batch, [read_access]),
        "similar_batch": Endpoint("POST", "/artists/similar", similar_batch, [read_access]),
        "artist": Endpoint("GET", "/artists/{artist_id}", artist, [read_access]),
        "find_artists": Endpoint("GET", "/artists", find_artists, [read_access]),
        "find_tags": Endpoint("GET", "/tags", find_tags, [read_access]),
        "track_clusters": Endpoint("POST", "/tracks/clusters", track_clusters, [read_access]),
        "map": Endpoint("GET", "/map", served_map, [read_access]),
    }
