"""The one ASGI layer in front of everything: observability, limits, and the query endpoints' router.

Every request passes `Front` once, whichever way it is answered:
- its `X-Request-ID` (the client's plain token, or a new one) in the response and every log
  line; `X-Model-Version` and `X-Index-Version` of the artifacts it started on, errors included;
- HEAD answered as the GET of the same route, without the body;
- a path whose escapes are not UTF-8 refused (400), a body past `max_body_bytes` refused (413);
- an exception anywhere logged with the request id and answered 500 with the same headers;
- counted in the Prometheus metrics by route template, method and status, with its latency.

Then the query endpoints (`service.endpoints`) are matched here and answered by their own
functions, after their checks: the hot paths pay for no other routing, dependency solving
or response objects. Everything else goes on to FastAPI (writes, swaps, readiness, metrics,
the OpenAPI document and its pages), which runs its own dependencies.

One pure-ASGI layer rather than a stack of middleware: each layer costs an await and a
closure per request; the bench reports what this one costs (`asgi.front_us`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from fastapi import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.logs import escape_controls
from service.endpoints import Call, Endpoint, too_large
from service.observe import METHODS, Metrics, access_log, bad_path, request_id, request_id_of, stamp_request_ids
from service.state import Serving

log = logging.getLogger(__name__)

_INTERNAL = b'{"detail":"internal error; see the server log for this request id"}'
_BAD_PATH = b'{"detail":"the URL path is not valid UTF-8 once percent-decoded"}'
_NOT_ALLOWED = b'{"detail":"Method Not Allowed"}'
_JSON = [(b"content-type", b"application/json")]
Headers = list[tuple[bytes, bytes]]


async def _answer(send: Send, status: int, body: bytes, headers: Headers, head: bool) -> None:
    """A whole JSON response: content type and length, then `headers`."""
    start = [*_JSON, (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": start})
    await send({"type": "http.response.body", "body": b"" if head else body})


def route_path(scope: Scope) -> str:
    """The path below the scope's root_path (the application's mount point), as Starlette routes it."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if not root or not path.startswith(root) or path == root:
        return "" if root and path == root else path
    return path[len(root) :] if path[len(root)] == "/" else path


def _refusal(exc: HTTPException) -> tuple[int, bytes, Headers]:
    """An HTTPException as FastAPI would answer it: status, {"detail": ...} and its headers."""
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (exc.headers or {}).items()]
    return exc.status_code, orjson.dumps({"detail": exc.detail}), headers


class Front:
    """The outermost ASGI app: see the module's docstring. `inner` is FastAPI's own ASGI entry."""

    def __init__(
        self,
        inner: ASGIApp,
        serving: Serving,
        endpoints: dict[str, Endpoint],
        metrics: Metrics,
        routes: Callable[[], list[BaseRoute]] = list,
    ) -> None:
        self.inner = inner
        self.routes = routes  # FastAPI's routes, to tell a 405 from a route of FastAPI's
        self.serving = serving
        self.endpoints = endpoints
        self.metrics = metrics
        self.access_log = serving.settings.access_log
        stamp_request_ids()

    def match(self, scope: Scope) -> tuple[Endpoint | None, dict[str, str], list[str]]:
        """The endpoint for a request and its path parameters; else None, and the methods the path allows
        when an endpoint has the path and no FastAPI route takes the method (a 405), else none.

        Paths are matched below the scope's `root_path`, as Starlette's router matches them.
        """
        method, path = scope["method"], route_path(scope)
        allowed = []
        for endpoint in self.endpoints.values():
            found = endpoint.pattern.match(path)
            if found is None:
                continue
            if endpoint.method == method:
                return endpoint, found.groupdict(), []
            allowed.append(endpoint.method)
        if not allowed or self.fastapi_route(scope) is not None:  # e.g. PUT /artists/{artist_id}
            return None, {}, []
        others = (m for m in ("GET", "POST", "PUT", "DELETE") if self.fastapi_route({**scope, "method": m}))
        return None, {}, sorted({*allowed, *others})

    def fastapi_route(self, scope: Scope) -> str | None:
        """The template of the FastAPI route that takes this request (method and path), or None."""
        probe = {"type": "http", "method": scope["method"], "path": scope["path"]}
        probe["root_path"] = scope.get("root_path", "")
        for route in self.routes():
            found, _ = route.matches(probe)
            if found is Match.FULL:
                return getattr(route, "path", None) or "unmatched"
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # the lifespan
            await self.inner(scope, receive, send)
            return
        headers = scope["headers"]
        token = request_id.set(rid := request_id_of(headers))
        started = time.perf_counter()
        method = scope["method"] if scope["method"] in METHODS else "OTHER"  # bounded label values
        head = method == "HEAD"
        if head:
            scope = {**scope, "method": "GET"}
        loaded = self.serving.artifacts  # the artifacts at the start of the request answer it
        extra = [*(loaded.version_headers if loaded is not None else ()), (b"x-request-id", rid.encode())]
        status, route, responded = 500, "unmatched", False
        try:
            bad = bad_path(scope)
            endpoint, params, allowed = (None, {}, []) if bad else self.match(scope)
            if bad:
                status, responded = 400, True
                await _answer(send, 400, _BAD_PATH, extra, head)
            elif endpoint is not None:
                route = endpoint.template
                call = Call(self.serving, loaded, params, scope["query_string"], headers, receive)
                try:
                    more: Headers = []
                    status, body = 200, await endpoint(call)
                except HTTPException as exc:
                    status, body, more = _refusal(exc)
                responded = True
                await _answer(send, status, body, [*more, *extra], head)
            elif allowed:
                status, responded, route = 405, True, self.template_of(scope)
                await _answer(send, 405, _NOT_ALLOWED, [(b"allow", ", ".join(allowed).encode()), *extra], head)
            else:

                async def send_wrapped(message: Message) -> None:
                    nonlocal status, responded
                    if message["type"] == "http.response.start":
                        status, responded = message["status"], True
                        message["headers"] = [*message.get("headers", []), *extra]
                    elif head and message["type"] == "http.response.body":
                        message = {**message, "body": b""}
                    await send(message)

                await self._inner_limited(scope, receive, send_wrapped)
                route = getattr(scope.get("route"), "path", None) or self.fastapi_route(scope) or route
        except Exception:
            log.exception("unexpected error on %s %s", method, escape_controls(scope["path"]))
            status = 500
            if not responded:
                await _answer(send, 500, _INTERNAL, extra, head)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.requests.observe(route, method, status, elapsed)
            if self.access_log:
                self._log(method, scope["path"], status, elapsed)
            request_id.reset(token)

    def template_of(self, scope: Scope) -> str:
        """The template of the endpoint whose path this is (any method), for the metrics."""
        path = route_path(scope)
        return next((e.template for e in self.endpoints.values() if e.pattern.match(path)), "unmatched")

    async def _inner_limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        """FastAPI, with the body size limit: by Content-Length up front, else counted as the body arrives."""
        limit = self.serving.settings.max_body_bytes
        length = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > limit:
            await self._refuse(send, too_large(str(int(length)), limit))
            return
        if scope["method"] in ("GET", "HEAD") or length is not None:  # no body, or one known to fit
            await self.inner(scope, receive, send)
            return
        seen, refused = 0, False

        async def counting_receive() -> Message:
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:  # answer now; the app sees the client go away
                refused = True
                await self._refuse(send, too_large(f"more than {limit}", limit))
                return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        await self.inner(scope, counting_receive, guarded_send)

    @staticmethod
    async def _refuse(send: Send, exc: HTTPException) -> None:
        status, body, headers = _refusal(exc)
        await _answer(send, status, body, headers, head=False)  # `send` adds the request's headers

    @staticmethod
    def _log(method: str, path: str, status: int, elapsed: float) -> None:
        fields: dict[str, Any] = {"method": method, "path": path, "status": status, "ms": round(elapsed * 1000, 3)}
        access_log.info("%s %s %d %.2f ms", method, path, status, elapsed * 1000, extra={"fields": fields})
