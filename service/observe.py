"""Observability: a request id on every request and log line, JSON logs, Prometheus metrics.

`Observe` is the outermost ASGI middleware: it takes the client's `X-Request-ID` (if it is
a plain token) or makes one, returns it in the response header with the served versions,
puts it in every log record made while the request runs, answers HEAD as GET without the
body, turns any exception into a logged 500 carrying those headers, and counts the request
in the app's Prometheus registry by route template, method and status, with its latency.
`/metrics` serves the registry.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import os
import re
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.logs import escape_controls

if TYPE_CHECKING:
    from service.artifacts import Artifacts

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")
_PREFIX = os.urandom(4).hex()  # unique per process; ids are PREFIX-COUNTER, cheap to make
_counter = itertools.count(1)
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
access_log = logging.getLogger("cmar.access")
log = logging.getLogger(__name__)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and the traceback if any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id.get(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def use_json_logs() -> None:
    """Format every handler of the root logger (and uvicorn's) as JSON lines."""
    for name in ("", "uvicorn", "uvicorn.error", "uvicorn.access"):
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(JsonFormatter())


def _stamp_request_ids() -> None:
    """Give every log record the request id current where it is made (not where it is formatted)."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "cmar_request_id", False):
        return

    def make(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.request_id = request_id.get()
        return record

    make.cmar_request_id = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(make)


class Metrics:
    """The app's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "cmar_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "cmar_request_seconds",
            "HTTP request latency by route, method and status",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.artists = Gauge(
            "cmar_index_artists", "artists served (built index and live writes)", registry=self.registry
        )
        self.served = Gauge(
            "cmar_model_info",
            "the model and index versions served (value 1)",
            ["model_version", "index_version"],
            registry=self.registry,
        )
        self.writes = Counter("cmar_writes", "artists written through the API", ["op"], registry=self.registry)
        self.swaps = Counter("cmar_swaps", "artifact swaps by result", ["result"], registry=self.registry)

        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def children(self, route: str, method: str, status: int) -> tuple[Any, Any]:
        """The request counter and latency histogram of one (route, method, status), made once.

        `labels()` looks the child up under a lock on every call; kept here, a request pays
        only for `inc()` and `observe()`. Routes are templates, so the keys are few.
        """
        key = (route, method, status)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route, method, str(status)),
            )
        return found

    def serving(self, artifacts: Artifacts) -> None:
        """Point the gauges at newly served artifacts."""
        self.served.clear()
        self.served.labels(artifacts.model.version, artifacts.index.version).set(1)
        self.artists.set_function(lambda: len(artifacts))


def new_request_id() -> str:
    """A fresh request id: this process's prefix and a counter."""
    return f"{_PREFIX}-{next(_counter)}"


def loaded(scope: Scope) -> Artifacts | None:
    """The artifacts the app serves at this moment (None before the lifespan loaded them)."""
    app = scope.get("app")  # set by Starlette before the middleware stack runs
    serving = getattr(app.state, "serving", None) if app is not None else None
    return getattr(serving, "artifacts", None)


_INTERNAL = b'{"detail":"internal error; see the server log for this request id"}'
_BAD_PATH = b'{"detail":"the URL path is not valid UTF-8 once percent-decoded"}'


def _bad_path(scope: Scope) -> bool:
    """True if the raw path's percent-escapes do not decode to UTF-8 (servers would turn them into U+FFFD,
    making different ids one)."""
    raw: bytes = scope.get("raw_path") or b""
    if b"%" not in raw:
        return False
    try:
        urllib.parse.unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


async def _answer(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]], head: bool) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *extra]})
    await send({"type": "http.response.body", "body": b"" if head else body})


class Observe:
    """The one outer layer every request passes: request id, version headers, HEAD, errors, metrics, access log.

    - the client's `X-Request-ID` (a plain token) or a new one, in the response and every log line;
    - `X-Model-Version` and `X-Index-Version` of the artifacts serving the request, on every
      response, errors included;
    - HEAD is answered as the GET of the same route, without the body;
    - an exception anywhere inside is logged with the request id and answered with a 500
      that carries the same headers (the server never sees it);
    - the request counted by route template, method and status, with its latency.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, log_requests: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests
        _stamp_request_ids()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", []) if k == b"x-request-id"), b"")
        rid = given.decode() if _VALID_ID.match(given) else new_request_id()
        token = request_id.set(rid)
        started = time.perf_counter()
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"  # bounded label values
        head = method == "HEAD"
        if head:
            scope = {**scope, "method": "GET"}
        artifacts = loaded(scope)  # the artifacts at the start of the request answer it
        extra = [*(artifacts.version_headers if artifacts is not None else []), (b"x-request-id", rid.encode())]
        status = 500
        responded = False

        async def send_wrapped(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status = message["status"]
                responded = True
                message["headers"] = [*message.get("headers", []), *extra]
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            if _bad_path(scope):
                status = 400
                await _answer(send, 400, _BAD_PATH, extra, head)
            else:
                await self.app(scope, receive, send_wrapped)
        except Exception:
            log.exception("unexpected error on %s %s", method, escape_controls(scope["path"]))
            status = 500
            if not responded:
                await _answer(send, 500, _INTERNAL, extra, head)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("cmar.route") or getattr(scope.get("route"), "path", None) or "unmatched"
            count, latency = self.metrics.children(route, method, status)
            count.inc()
            latency.observe(elapsed)
            if self.log_requests:
                path = scope["path"]
                access_log.info(
                    "%s %s %d %.2f ms",
                    method,
                    path,
                    status,
                    elapsed * 1000,
                    extra={
                        "fields": {"method": method, "path": path, "status": status, "ms": round(elapsed * 1000, 3)}
                    },
                )
            request_id.reset(token)
