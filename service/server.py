"""Running the app: under uvicorn (the default) with the limits an exposed server needs, or under granian.

`run` serves an app with the server the settings name (CMAR_SERVER). uvicorn is the default
because only it holds every limit below; granian (a Rust HTTP server, the `granian` extra)
is selectable and measured beside it by `cmar bench --server granian`: it enforces a header
read timeout and a 100-field cap itself and bounds headers by its read buffer, but has no
connection cap (past its backpressure, new connections wait in the kernel's queue) and no
body timeout, so it belongs behind a proxy that enforces those.

uvicorn's httptools protocol bounds neither the size of a request's headers nor the time a
client may take to send them or its body, and accepts every connection. `limited_protocol`
returns a subclass that:
- answers 431 and closes when a request's line and headers pass `max_header_bytes` bytes or
  `max_headers` fields (a client streaming endless headers costs at most that much memory);
  only the bytes up to the blank line that ends the headers count, never the body;
- answers 408 and closes a connection whose request headers are not complete within
  `header_timeout` seconds of its first byte (or of the connection opening), or whose body
  is not complete within `body_timeout` seconds of its headers;
- keeps at most `max_connections` open: a new connection past the cap closes the one that has
  waited longest for a request's headers (idle or trickling), else the one that has waited
  longest for a body the app has not answered yet, or, when every other one is being answered,
  is itself answered 503 and closed; slow clients cannot lock new ones out, and
  the process keeps file descriptors for the clients it serves.
Its own answers (these, and httptools' 400 for a malformed request) carry an `X-Request-ID`
and the served versions, like the app's.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
from collections.abc import Callable
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.errors import CmarError
from service.observe import new_request_id
from service.settings import Settings

log = logging.getLogger(__name__)

_REASONS = {
    400: b"Bad Request",
    413: b"Content Too Large",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}
FD_RESERVE = 64  # file descriptors kept for the model, the index, the database and logs
_END = b"\r\n\r\n"


def _no_headers() -> list[tuple[bytes, bytes]]:
    return []


class _LimitedHttpTools(HttpToolsProtocol):
    """httptools' protocol with header size, header count, header and body time, and connection limits."""

    max_header_bytes = 65_536
    max_headers = 100
    header_timeout = 10.0
    body_timeout = 30.0
    max_connections = 1000
    max_body_bytes = 1_048_576
    max_pipeline = 64  # requests queued behind the one being answered on a connection
    version_headers: Callable[[], list[tuple[bytes, bytes]]] = staticmethod(_no_headers)
    refused: Callable[[int], None] = staticmethod(lambda status: None)  # counts the protocol's own answers

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0
        self._tail = b""  # the last bytes of the head seen so far (to find a blank line split across reads)
        self._in_head = True
        self._timer: asyncio.TimerHandle | None = None
        self._too_many_headers = False
        self._parsed_head = 0  # bytes of the current request's line, headers and trailers, as parsed
        self._after_head = 0  # bytes received since the current request's headers ended
        self._waiting_since = self.loop.time()  # since when it has been waiting for a request's headers
        if len(self.connections) > self.max_connections and not self._evict_slowest():
            self._refuse(503, f"the server has {self.max_connections} open connections (CMAR_MAX_CONNECTIONS)")
            return
        self._start_timer(self.header_timeout, "request headers not received", "CMAR_HEADER_TIMEOUT")

    def _evict_slowest(self) -> bool:
        """Make room by closing the connection that has waited longest for a request's headers.

        A connection that is mid-request is never evicted; one that is idle or trickling
        headers is, so slow clients cannot lock new ones out. False if every other
        connection is busy.
        """
        others = [
            c
            for c in self.connections
            if c is not self and isinstance(c, _LimitedHttpTools) and not c.transport.is_closing()
        ]
        waiting = [
            c for c in others if c._in_head and (c.cycle is None or c.cycle.response_complete)
        ]  # idle, or trickling headers; never one whose response is under way
        if not waiting:  # then one still receiving its body before the app could answer (trickling bodies)
            waiting = [
                c
                for c in others
                if not c._in_head and c.cycle is not None and c.cycle.more_body and not c.cycle.response_started
            ]
        if not waiting:
            return False
        slowest = min(waiting, key=lambda c: c._waiting_since)
        slowest._refuse(503, "closed to make room for a new connection (CMAR_MAX_CONNECTIONS)")
        self.connections.discard(slowest)
        return True

    def _start_timer(self, seconds: float, what: str, setting: str) -> None:
        if self._timer is None:
            self._timer = self.loop.call_later(seconds, self._timed_out, f"{what} within {seconds:g} s ({setting})")

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self, message: str) -> None:
        self._timer = None
        responding = self.cycle is not None and not self.cycle.response_complete and self.cycle.response_started
        if not self.transport.is_closing():
            if responding:  # the answer is under way: it cannot be replaced by a 408
                self.transport.close()
            else:
                self._refuse(408, message)

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` with a JSON detail and the usual headers, and close the connection."""
        body = orjson.dumps({"detail": message})
        head = [
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n" % len(body),
        ]
        for name, value in [*self.version_headers(), (b"x-request-id", new_request_id().encode())]:
            head.append(name + b": " + value + b"\r\n")
        self._stop_timer()
        if not self.transport.is_closing():
            self.transport.write(b"".join([*head, b"\r\n", body]))
            self.transport.close()
            self.refused(status)
        if status in (408, 431):
            log.warning("connection from %s refused with %d: %s", self.client, status, message)

    def send_400_response(self, msg: str) -> None:  # httptools could not parse the request
        self._refuse(400, f"{msg} (malformed HTTP)")

    def _head_bytes_in(self, data: bytes) -> int:
        """How many bytes of `data` belong to the current request's line and headers."""
        joined = self._tail + data
        end = joined.find(_END)
        if end < 0:
            self._tail = joined[-3:]
            return len(data)
        self._tail = b""
        return max(0, end + len(_END) - (len(joined) - len(data)))

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._in_head:
            self._start_timer(self.header_timeout, "request headers not received", "CMAR_HEADER_TIMEOUT")
            self._head_bytes += self._head_bytes_in(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse(431, f"request headers over {self.max_header_bytes} bytes (CMAR_MAX_HEADER_BYTES)")
                return
        else:  # a body, trailers, pipelined requests: never more than a body and a head's worth unanswered
            self._after_head += len(data)
            if self._after_head > self.max_body_bytes + 2 * self.max_header_bytes:
                self._refuse(413, f"more than {self.max_body_bytes} bytes of body (CMAR_MAX_BODY_BYTES)")
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:
            self._waiting_since = self.loop.time()
        self._in_head = True
        self._head_bytes = 0
        self._parsed_head = 0

    def on_url(self, url: bytes) -> None:
        self._parsed_head += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        # Counted as parsed too: a pipelined request's head, or a chunked body's trailers, can
        # arrive inside one read with other bytes, where the byte count above cannot see them.
        self._parsed_head += len(name) + len(value) + 4
        if len(self.headers) >= self.max_headers or self._parsed_head > self.max_header_bytes:
            if self._in_head:
                self._too_many_headers = True  # answered 431 when the headers end
            else:  # trailers past the limit: the request is already being answered, so only close
                log.warning("connection from %s closed: trailers over the header limits", self.client)
                self.transport.close()
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._tail = b""
        self._stop_timer()
        if self._too_many_headers:
            self._refuse(
                431,
                f"more than {self.max_headers} header fields or {self.max_header_bytes} bytes of headers "
                "(CMAR_MAX_HEADERS, CMAR_MAX_HEADER_BYTES)",
            )
            return
        self._after_head = 0
        self._waiting_since = self.loop.time()  # now waiting for the body
        self._start_timer(self.body_timeout, "request body not received", "CMAR_BODY_TIMEOUT")
        super().on_headers_complete()
        if len(self.pipeline) > self.max_pipeline:  # a client sending requests without reading answers
            log.warning("connection from %s closed: over %d pipelined requests", self.client, self.max_pipeline)
            self.pipeline.clear()
            self.transport.close()

    def on_message_complete(self) -> None:
        self._stop_timer()
        if self._too_many_headers or self.transport.is_closing():
            return  # refused: no request cycle was started
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0
        self._waiting_since = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)


def limited_protocol(
    settings: Settings,
    version_headers: Callable[[], list[tuple[bytes, bytes]]] | None = None,
    refused: Callable[[int], None] | None = None,
) -> type[HttpToolsProtocol]:
    """The httptools protocol class with the limits of `settings` (see the module docstring).

    `version_headers` gives the headers naming the served versions, for the protocol's own
    answers; `refused(status)` is called for each of them (the app's metrics count them).
    """
    return type(
        "LimitedHttpTools",
        (_LimitedHttpTools,),
        {
            "max_header_bytes": settings.max_header_bytes,
            "max_headers": settings.max_headers,
            "header_timeout": settings.header_timeout,
            "body_timeout": settings.body_timeout,
            "max_connections": settings.max_connections,
            "max_body_bytes": settings.max_body_bytes,
            "version_headers": staticmethod(version_headers or _no_headers),
            "refused": staticmethod(refused or (lambda status: None)),
        },
    )


def raise_fd_limit(max_connections: int) -> int:
    """Raise the soft limit of open files towards the hard one; return the connections it allows.

    Logs a warning when the limit cannot hold `max_connections` plus a reserve.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    allowed = max_connections if soft == resource.RLIM_INFINITY else min(max_connections, soft - FD_RESERVE)
    if allowed < max_connections:
        log.warning(
            "the open-file limit %d allows %d connections, not %d (CMAR_MAX_CONNECTIONS)",
            soft,
            allowed,
            max_connections,
        )
    return max(1, allowed)


def run(app: Any, settings: Settings, port: int) -> None:
    """Serve `app` on settings.host:port with the server settings.server names, until interrupted.

    Raises CmarError if that server is not installed.
    """
    if settings.server == "granian":
        _run_granian(app, settings, port)
        return
    import uvicorn

    uvicorn.run(
        app,
        host=settings.host,
        port=port,
        log_level=settings.log_level,
        access_log=False,  # the app logs requests itself, with their ids (CMAR_ACCESS_LOG)
        log_config=None,  # uvicorn's loggers go to ours (JSON or text)
        **uvicorn_options(settings, app),  # header size and time, body time, connection cap
    )


def _run_granian(app: Any, settings: Settings, port: int) -> None:
    """granian's embedded server in this process (one worker, HTTP/1.1), with the limits it has."""
    try:
        from granian.constants import HTTPModes, Interfaces
        from granian.http import HTTP1Settings
        from granian.server.embed import Server
    except ImportError:
        raise CmarError("CMAR_SERVER=granian needs granian: pip install 'cmar[granian]'") from None
    server = Server(
        app,
        address=settings.host,
        port=port,
        interface=Interfaces.ASGI,
        http=HTTPModes.http1,  # granian's header read timeout holds on HTTP/1 only
        websockets=False,
        backpressure=settings.max_connections,  # requests at once; further connections wait to be accepted
        http1_settings=HTTP1Settings(
            header_read_timeout=int(settings.header_timeout * 1000), max_buffer_size=settings.max_header_bytes
        ),
        log_level=settings.log_level if settings.log_level != "trace" else "debug",  # type: ignore[arg-type]
    )

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.stop)
        await server.serve()

    asyncio.run(serve())
    # The lifespan has shut down (the write database is closed). granian 2.8's embedded server
    # can abort while the interpreter finalises its runtime threads; there is nothing left to
    # finalise, so leave now with the exit code of a clean stop.
    logging.shutdown()
    os._exit(0)


def uvicorn_options(settings: Settings, app: Any = None) -> dict[str, Any]:
    """uvicorn.run keyword arguments for the limits in `settings`; `app`'s served versions on refusals."""

    serving = getattr(getattr(app, "state", None), "serving", None)

    def versions() -> list[tuple[bytes, bytes]]:
        artifacts = getattr(serving, "artifacts", None)
        return list(artifacts.version_headers) if artifacts is not None else []

    def refused(status: int) -> None:  # on the event loop's thread, like every request the app counts
        if serving is not None:
            serving.metrics.requests.observe("unmatched", "OTHER", status, 0.0)

    limited = settings.model_copy(update={"max_connections": raise_fd_limit(settings.max_connections)})
    # ws="none": no WebSocket routes; an Upgrade request is answered as plain HTTP by the app, with its headers
    return {"http": limited_protocol(limited, versions, refused), "timeout_keep_alive": 5, "ws": "none"}
