"""Running the app under uvicorn with the limits an exposed server needs.

uvicorn's httptools protocol bounds neither the size of a request's headers nor the time a
client may take to send them, and accepts every connection. `limited_protocol` returns a
subclass that:
- answers 431 and closes when a request's line and headers pass `max_header_bytes` bytes or
  `max_headers` fields (a client streaming endless headers costs at most that much memory);
- closes a connection whose request headers are not complete within `header_timeout` seconds
  of its first byte, or of the connection opening (slow clients cannot hold sockets forever);
- keeps at most `max_connections` open: a new connection past the cap closes the one that has
  waited longest for a request's headers (idle or trickling), or, when every other one is
  mid-request, is itself answered 503 and closed; slow clients cannot lock new ones out, and
  the process keeps file descriptors for the clients it serves.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.settings import Settings

log = logging.getLogger(__name__)

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}
FD_RESERVE = 64  # file descriptors kept for the model, the index, the database and logs


class _LimitedHttpTools(HttpToolsProtocol):
    """httptools' protocol with header size, header count, header time and connection limits."""

    max_header_bytes = 65_536
    max_headers = 100
    header_timeout = 10.0
    max_connections = 1000

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_bytes = 0
        self._in_head = True
        self._head_timer: asyncio.TimerHandle | None = None
        self._too_many_headers = False
        self._waiting_since = self.loop.time()  # since when it has been waiting for a request's headers
        if len(self.connections) > self.max_connections and not self._evict_slowest():
            self._refuse(503, f"the server has {self.max_connections} open connections (CMAR_MAX_CONNECTIONS)")
            return
        self._start_head_timer()

    def _evict_slowest(self) -> bool:
        """Make room by closing the connection that has waited longest for a request's headers.

        A connection that is mid-request is never evicted; one that is idle or trickling
        headers is, so slow clients cannot lock new ones out. False if every other
        connection is busy.
        """
        waiting = [
            c
            for c in self.connections
            if c is not self
            and isinstance(c, _LimitedHttpTools)
            and c._in_head
            and (c.cycle is None or c.cycle.response_complete)  # never one whose response is under way
            and not c.transport.is_closing()
        ]
        if not waiting:
            return False
        slowest = min(waiting, key=lambda c: c._waiting_since)
        slowest._refuse(503, "closed to make room for a new connection (CMAR_MAX_CONNECTIONS)")
        self.connections.discard(slowest)
        return True

    def _start_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._refuse(408, f"request headers not received within {self.header_timeout:g} s (CMAR_HEADER_TIMEOUT)")

    def _refuse(self, status: int, message: str) -> None:
        body = f'{{"detail": "{message}"}}'.encode()
        head = b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status])
        head += b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body)
        self._stop_head_timer()
        if not self.transport.is_closing():
            self.transport.write(head + body)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        if self._in_head:
            self._start_head_timer()
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._refuse(431, f"request headers over {self.max_header_bytes} bytes (CMAR_MAX_HEADER_BYTES)")
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_head:
            self._waiting_since = self.loop.time()
        self._in_head = True
        self._head_bytes = 0
        self._start_head_timer()

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(self.headers) >= self.max_headers:
            self._too_many_headers = True
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stop_head_timer()
        if self._too_many_headers:
            self._refuse(431, f"more than {self.max_headers} header fields (CMAR_MAX_HEADERS)")
            return
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if self._too_many_headers:
            return  # refused: no request cycle was started
        super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0
        self._waiting_since = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)


def limited_protocol(settings: Settings) -> type[HttpToolsProtocol]:
    """The httptools protocol class with the limits of `settings` (see the module docstring)."""
    return type(
        "LimitedHttpTools",
        (_LimitedHttpTools,),
        {
            "max_header_bytes": settings.max_header_bytes,
            "max_headers": settings.max_headers,
            "header_timeout": settings.header_timeout,
            "max_connections": settings.max_connections,
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
        log.warning("open-file limit %d allows %d connections, not %d (CMAR_MAX_CONNECTIONS)", soft, allowed, wanted)
    return max(1, allowed)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn.run keyword arguments for the limits in `settings`."""
    limited = settings.model_copy(update={"max_connections": raise_fd_limit(settings.max_connections)})
    return {"http": limited_protocol(limited), "timeout_keep_alive": 5}
