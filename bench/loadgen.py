"""HTTP/1.1 keep-alive load generator for a server on localhost, run in its own process (see main / CLI).

asyncio (uvloop when importable), one raw protocol per connection and a minimal response parser, so it stays cheap.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_ALLOWED_HOSTS = {"127.0.0.1": "127.0.0.1", "localhost": "127.0.0.1"}
_GRACE_S = 5.0  # after the window, how long in-flight requests may take before they are cancelled
_LENGTH, _CHUNKED, _UNTIL_CLOSE = 0, 1, 2
_CL_RE = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)")
_CHUNKED_RE = re.compile(rb"\r\ntransfer-encoding:[^\r\n]*chunked")
_CLOSE_RE = re.compile(rb"\r\nconnection:[^\r\n]*close")


@dataclass(frozen=True)
class Request:
    """One HTTP request to replay: method, path (starting with '/'), optional JSON body bytes."""

    method: str
    path: str
    body: bytes | None = None


@dataclass
class LoadResult:
    """What one run measured. Counts cover responses completed inside the measured window only.

    requests: responses completed (any status); errors: non-2xx responses plus connection/protocol errors, by kind
    in error_kinds; duration_s: window (s); rps: requests / duration_s; latencies in ms (NaN if none completed);
    client_cpu_s: CPU seconds this (generator) process used during the window.
    """

    requests: int
    errors: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    client_cpu_s: float
    error_kinds: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict (NaN becomes None)."""
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(self).items()}


class _ProtocolError(Exception):
    """Not a valid HTTP/1.x response."""


class _Conn(asyncio.Protocol):
    """One keep-alive connection; parses one response at a time into `waiter` (status, keep_alive)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bool]] | None = None
        self.closed = False
        self.hdr_end, self.status, self.mode, self.length, self.pos, self.keep_alive = -1, 0, _LENGTH, 0, 0, True

    def expect(self, waiter: asyncio.Future[tuple[int, bool]]) -> None:
        """Reset the parser for the next response and resolve `waiter` when it is complete."""
        self.hdr_end, self.mode, self.keep_alive, self.waiter = -1, _LENGTH, True, waiter

    def data_received(self, data: bytes) -> None:
        self.buf += data
        w = self.waiter
        if w is None or w.done():
            return
        try:
            if self._parse():
                w.set_result((self.status, self.keep_alive))
        except (ValueError, IndexError) as exc:
            w.set_exception(_ProtocolError(str(exc)))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        w = self.waiter
        if w is not None and not w.done():
            if self.hdr_end >= 0 and self.mode == _UNTIL_CLOSE:
                w.set_result((self.status, False))
            else:
                w.set_exception(ConnectionResetError("server closed the connection mid-response"))

    def _parse(self) -> bool:
        """Advance over self.buf; True (and the response removed from buf) once a full response is in."""
        buf = self.buf
        if self.hdr_end < 0:
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                return False
            head = bytes(buf[: i + 2]).lower()
            if not head.startswith(b"http/1.") or len(head) < 12:
                raise ValueError(f"bad status line {head[:40]!r}")
            self.hdr_end, self.status = i + 4, int(head[9:12])
            self.keep_alive = head[5:8] == b"1.1" and _CLOSE_RE.search(head) is None
            cl = _CL_RE.search(head)
            if _CHUNKED_RE.search(head):
                self.mode, self.pos = _CHUNKED, i + 4
            elif cl is not None or self.status < 200 or self.status in (204, 304):
                self.mode, self.length = _LENGTH, i + 4 + (int(cl.group(1)) if cl else 0)
            else:
                self.mode, self.keep_alive = _UNTIL_CLOSE, False
        if self.mode == _LENGTH:
            if len(buf) < self.length:
                return False
            del buf[: self.length]
            return True
        if self.mode == _CHUNKED:
            while True:
                j = buf.find(b"\r\n", self.pos)
                if j < 0:
                    return False
                size = int(bytes(buf[self.pos : j]).split(b";", 1)[0], 16)
                if size == 0:  # last chunk, then optional trailers, then an empty line
                    k = buf.find(b"\r\n\r\n", j)
                    if k < 0:
                        return False
                    del buf[: k + 4]
                    return True
                nxt = j + 2 + size + 2
                if len(buf) < nxt:
                    return False
                if buf[nxt - 2 : nxt] != b"\r\n":
                    raise ValueError("chunk not terminated by CRLF")
                self.pos = nxt
        buf.clear()  # until close: the body is discarded, completion comes from connection_lost
        return False


def _encode(req: Request, host_header: str) -> bytes:
    """The full request bytes sent on the wire (POST/PUT/PATCH or any body: JSON content type and length)."""
    if not req.path.startswith("/"):
        raise ValueError(f"path must start with '/': {req.path!r}")
    head = f"{req.method.upper()} {req.path} HTTP/1.1\r\nHost: {host_header}\r\n"
    if req.body is None and req.method.upper() not in ("POST", "PUT", "PATCH"):
        return (head + "\r\n").encode("latin-1")
    body = req.body or b""
    return (head + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode("latin-1") + body


async def _run(
    addr: str, port: int, wire: list[bytes], concurrency: int, start: float, end: float
) -> tuple[array[float], Counter[str], float]:
    """Run the connection tasks; returns (latencies in ms, error counts, CPU s) for the window [start, end).

    start and end are time.perf_counter() values. Single-threaded, so the shared counters need no lock.
    """
    loop = asyncio.get_running_loop()
    lat_ms: array[float] = array("d")
    errors: Counter[str] = Counter()
    rr = itertools.cycle(wire)  # round-robin over the request list, shared by all connections

    async def worker() -> None:
        conn: _Conn | None = None
        tr: asyncio.Transport | None = None
        try:
            while (t0 := time.perf_counter()) < end:
                if conn is None or conn.closed:
                    try:
                        tr, conn = await loop.create_connection(_Conn, addr, port)
                    except OSError as exc:
                        errors[type(exc).__name__] += start <= t0
                        conn = None
                        await asyncio.sleep(0.01)  # don't spin while the server is down
                        continue
                waiter: asyncio.Future[tuple[int, bool]] = loop.create_future()
                conn.expect(waiter)
                t0 = time.perf_counter()
                tr.write(next(rr))  # type: ignore[union-attr]
                try:
                    status, keep_alive = await waiter
                except (ConnectionError, _ProtocolError) as exc:
                    errors[type(exc).__name__] += start <= time.perf_counter() < end
                    keep_alive = False
                else:
                    t1 = time.perf_counter()
                    if start <= t1 < end:
                        lat_ms.append((t1 - t0) * 1e3)
                        if not 200 <= status < 300:
                            errors[str(status)] += 1
                if not keep_alive:
                    tr.close()  # type: ignore[union-attr]
                    conn = None
        finally:
            if tr is not None:
                tr.close()

    tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    cpu0 = time.process_time()
    await asyncio.sleep(max(0.0, end - time.perf_counter()))
    cpu_s = time.process_time() - cpu0
    done, pending = await asyncio.wait(tasks, timeout=_GRACE_S)
    for t in pending:
        t.cancel()
    if pending:  # a request still hanging _GRACE_S after the window
        errors["unfinished"] += len(pending)
        await asyncio.wait(pending)
    for t in done:
        if (exc := t.exception()) is not None:
            raise exc
    return lat_ms, +errors, cpu_s  # unary + drops the zero counts


def run_load(
    host: str, port: int, requests: list[Request], concurrency: int, duration_s: float, warmup_s: float = 1.0
) -> LoadResult:
    """Drive `concurrency` keep-alive connections for warmup_s + duration_s seconds; measure the last duration_s.

    Only 127.0.0.1 / localhost are accepted. Must not be called from inside a running event loop.
    """
    if host not in _ALLOWED_HOSTS:
        raise ValueError(f"loadgen only sends traffic to 127.0.0.1/localhost, refusing host {host!r}")
    if not requests or concurrency < 1 or duration_s <= 0 or warmup_s < 0:
        raise ValueError("need at least one request, concurrency >= 1, duration_s > 0 and warmup_s >= 0")
    wire = [_encode(r, f"{host}:{port}") for r in requests]
    loop: asyncio.AbstractEventLoop
    try:
        import uvloop

        loop = uvloop.new_event_loop()
        log.debug("loadgen event loop: uvloop %s", uvloop.__version__)
    except ImportError:
        loop = asyncio.new_event_loop()
        log.debug("loadgen event loop: asyncio (uvloop not importable)")
    start = time.perf_counter() + warmup_s
    try:
        lat_ms, errors, cpu_s = loop.run_until_complete(
            _run(_ALLOWED_HOSTS[host], port, wire, concurrency, start, start + duration_s)
        )
    finally:
        loop.close()
    lat = np.frombuffer(lat_ms, dtype=np.float64)
    p50, p90, p99 = np.percentile(lat, [50, 90, 99]) if lat.size else (math.nan,) * 3
    return LoadResult(
        requests=int(lat.size), errors=sum(errors.values()), duration_s=duration_s, rps=lat.size / duration_s,
        p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99), max_ms=float(lat.max()) if lat.size else math.nan,
        client_cpu_s=cpu_s, error_kinds=dict(errors),
    )  # fmt: skip


def run_load_subprocess(
    port: int, requests: list[Request], concurrency: int, duration_s: float, warmup_s: float = 1.0,
    python: str = sys.executable,
) -> LoadResult:  # fmt: skip
    """run_load against 127.0.0.1:port in a child process (the CLI), so the generator has its own interpreter."""
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for r in requests:
            body = None if r.body is None else json.loads(r.body)  # bodies must be JSON
            f.write(json.dumps({"method": r.method, "path": r.path, "body": body}) + "\n")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    cmd = [python, "-m", "bench.loadgen", "--port", str(port), "--concurrency", str(concurrency),
           "--duration", str(duration_s), "--warmup", str(warmup_s), "--requests", f.name]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=duration_s + warmup_s + 60)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        raise RuntimeError(f"loadgen timed out after {exc.timeout} s: {err[-2000:]}") from exc
    finally:
        os.unlink(f.name)
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen exited with {proc.returncode}: {proc.stderr[-2000:]}")
    try:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        kw: dict[str, Any] = {k: math.nan if v is None else v for k, v in out.items()}  # to_dict's None -> NaN
        return LoadResult(**kw)
    except (IndexError, ValueError, TypeError) as exc:
        raise RuntimeError(f"loadgen output unparsable ({exc}): {proc.stdout[-500:]} {proc.stderr[-2000:]}") from exc


def main(argv: list[str] | None = None) -> None:
    """CLI: run one load and write LoadResult.to_dict() as one JSON line on stdout."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1", choices=sorted(_ALLOWED_HOSTS))
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--concurrency", type=int, required=True)
    ap.add_argument("--duration", type=float, required=True, help="measured seconds")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before the window")
    ap.add_argument("--requests", required=True, help='JSON lines: {"method", "path", "body": JSON value or null}')
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    reqs = []
    for line in Path(args.requests).read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            body = None if d.get("body") is None else json.dumps(d["body"], separators=(",", ":")).encode()
            reqs.append(Request(d.get("method", "GET"), d["path"], body))
    res = run_load(args.host, args.port, reqs, args.concurrency, args.duration, args.warmup)
    sys.stdout.write(json.dumps(res.to_dict()) + "\n")


if __name__ == "__main__":
    main()
