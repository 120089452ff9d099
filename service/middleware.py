"""Plain ASGI middleware: the hottest GETs answered first, and the body size limit.

Plain ASGI rather than `@app.middleware("http")`, whose request/response wrapping costs more
than a precomputed answer itself.
"""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.observe import loaded
from service.responses import similar_body
from service.search import quick_similar_json
from service.settings import MAX_K

JSON = "application/json"
HEALTHY = b'{"status":"ok"}'
_PREFIX, _SUFFIX = "/artists/", "/similar"
SIMILAR_ROUTE = "/artists/{artist_id}/similar"  # the route template, as metrics name it


def _k(query: bytes) -> int | None:
    """k from a query string that holds nothing but an optional, plainly written k."""
    if not query:
        return 10
    if not query.startswith(b"k=") or not query[2:].isdigit() or len(query) > 6 or query[2:3] == b"0":
        return None
    k = int(query[2:])
    return k if 1 <= k <= MAX_K else None


def fast_answer(scope: Scope) -> bytes | None:
    """The body of a GET that needs no routing, validation or search, or None to let FastAPI answer.

    /healthz; and /artists/{id}/similar when its body is cached for the current snapshot of
    writes, or for a built-index artist whose precomputed list answers it without a search
    (`Artifacts.quick_similar_json`). Everything else (an unknown artist, a bad or unusual k, a longer list,
    a search) goes the documented way through FastAPI, which gives the same answers, the
    errors, and caches what it computed.
    """
    path: str = scope["path"]
    if path == "/healthz":
        scope["cmar.route"] = path
        return HEALTHY
    artifacts = loaded(scope)
    if artifacts is None or scope["app"].state.serving.settings.read_key_required:
        return None
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return None
    artist_id = path[len(_PREFIX) : -len(_SUFFIX)]
    k = _k(scope.get("query_string", b""))
    if k is None or "/" in artist_id or not artist_id:
        return None
    overlay = artifacts.overlay
    key = (artist_id, k)  # validated parameters only: junk query strings never make cache entries
    body = overlay.cache.get(key)
    if body is not None:
        scope["cmar.route"] = SIMILAR_ROUTE
        return body
    results = quick_similar_json(artifacts, artist_id, k, overlay)
    if results is None:
        return None
    body = similar_body(artist_id, k, results)
    overlay.cache.put(key, body)
    scope["cmar.route"] = SIMILAR_ROUTE
    return body


class FastPaths:
    """Answers `fast_answer`'s GETs directly; passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = fast_answer(scope) if scope["type"] == "http" and scope["method"] == "GET" else None  # HEAD: see Observe
        if body is None:
            await self.app(scope, receive, send)
            return
        headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """A 413 that names the limit, for a body over it: by its Content-Length, or as it is read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Send, size: str) -> None:
        detail = f"the request body has {size} bytes; the limit is {self.max_bytes} bytes (CMAR_MAX_BODY_BYTES)"
        body = orjson.dumps({"detail": detail})
        headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send, str(int(length)))
            return
        if scope["method"] in ("GET", "HEAD") or length is not None:  # no body, or one known to fit
            await self.app(scope, receive, send)
            return
        seen = 0
        refused = False

        async def counting_receive() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # answer now; the app sees the client go away
                refused = True
                await self._refuse(send, f"more than {self.max_bytes}")
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)
