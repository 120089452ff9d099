"""Observability: a request id on every request and log line, JSON logs, Prometheus metrics.

`service.front.Front`, the outermost ASGI layer, uses these on every request: it takes the
client's `X-Request-ID` (if it is a plain token) or makes one (`request_id_of`), puts it in
every log record made while the request runs, and counts the request in the app's Prometheus
registry by route template, method and status, with its latency (`Metrics`). `/metrics`
serves the registry.
"""

from __future__ import annotations

import bisect
import contextvars
import itertools
import json
import logging
import os
import re
import time
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString
from starlette.types import Scope

if TYPE_CHECKING:
    from service.artifacts import Artifacts

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")
_PREFIX = os.urandom(4).hex()  # unique per process; ids are PREFIX-COUNTER, cheap to make
_counter = itertools.count(1)
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
access_log = logging.getLogger("cmar.access")
log = logging.getLogger(__name__)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
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


def stamp_request_ids() -> None:
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


class RequestStats:
    """Requests counted by (route template, method, status), with their latency histogram.

    Counted with plain integers by the one thread that runs the event loop (every request
    passes `service.front.Front` there), and exposed to Prometheus as the counter
    `cmar_requests_total` and the histogram `cmar_request_seconds` when it is scraped: a
    request pays for a dictionary look-up and three additions, not for a client library's
    locks (`prometheus_client`'s Counter and Histogram take one per call).
    """

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self._stats: dict[tuple[str, str, int], list[Any]] = {}  # key -> [count, seconds, per-bucket counts]

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        entry = self._stats.get((route, method, status))
        if entry is None:
            entry = self._stats[(route, method, status)] = [0, 0.0, [0] * (len(self.buckets) + 1)]
        entry[0] += 1
        entry[1] += seconds
        entry[2][bisect.bisect_left(self.buckets, seconds)] += 1  # a bucket counts the values <= its bound

    def collect(self) -> Iterator[Metric]:
        """The Prometheus metric families (called by the registry at each scrape)."""
        labels = ["route", "method", "status"]
        requests = CounterMetricFamily("cmar_requests", "HTTP requests by route, method and status", labels=labels)
        latency = HistogramMetricFamily(
            "cmar_request_seconds", "HTTP request latency by route, method and status", labels=labels
        )
        for (route, method, status), (count, seconds, per_bucket) in list(self._stats.items()):
            values = [route, method, str(status)]
            requests.add_metric(values, count)
            cumulative = list(itertools.accumulate(per_bucket))
            bounds = [*(floatToGoString(b) for b in self.buckets), "+Inf"]
            latency.add_metric(values, list(zip(bounds, cumulative, strict=True)), seconds)
        yield requests
        yield latency


class Metrics:
    """The app's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = RequestStats()
        self.registry.register(self.requests)  # type: ignore[arg-type]
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

    def serving(self, artifacts: Artifacts) -> None:
        """Point the gauges at newly served artifacts."""
        self.served.clear()
        self.served.labels(artifacts.model.version, artifacts.index.version).set(1)
        self.artists.set_function(lambda: len(artifacts))


def new_request_id() -> str:
    """A fresh request id: this process's prefix and a counter."""
    return f"{_PREFIX}-{next(_counter)}"


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-ID if it is a plain token (1 to 64 of A-Z a-z 0-9 . _ -), else a new id."""
    for name, value in headers:
        if name == b"x-request-id":
            return value.decode() if _VALID_ID.match(value) else new_request_id()
    return new_request_id()


def bad_path(scope: Scope) -> bool:
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
