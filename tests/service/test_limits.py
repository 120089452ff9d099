"""The served process under hostile clients: header size, header count, slow headers, connection
cap, a restart on a port a client was connected to, and forged log lines (issue 10, kinds 10 and 11)."""

import contextlib
import socket
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import server
from tests.conftest import Built

LIMITS = {
    "CMAR_MAX_HEADER_BYTES": "8192",
    "CMAR_MAX_HEADERS": "20",
    "CMAR_HEADER_TIMEOUT": "1",
    "CMAR_MAX_CONNECTIONS": "16",
    "CMAR_BODY_TIMEOUT": "1",
    "CMAR_LOG_FORMAT": "text",
}


@pytest.fixture(scope="module")
def served(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[server.Server, Path]]:
    folder = tmp_path_factory.mktemp("limits")
    log = folder / "server.log"
    env = {**LIMITS, "CMAR_WRITES_DB": str(folder / "writes.sqlite3"), "CMAR_ACCESS_LOG": "true"}
    with server.start(built.model, built.index, log, env, quiet=False) as running:
        yield running, log


def _connect(port: int) -> socket.socket:
    return socket.create_connection((server.HOST, port), timeout=5)


def _answer(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def test_oversized_headers_get_431_and_the_connection_closes(served: tuple[server.Server, Path]) -> None:
    running, _ = served
    with _connect(running.port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        try:
            for _ in range(200):  # 200 x 1 kB of headers, never finished
                sock.sendall(b"x-junk: " + b"a" * 1000 + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
    assert server.get_json(running.port, "/healthz") == {"status": "ok"}


def test_too_many_header_fields_get_431(served: tuple[server.Server, Path]) -> None:
    running, _ = served
    with _connect(running.port) as sock:
        fields = b"".join(b"x-h%d: 1\r\n" % i for i in range(40))
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + fields + b"\r\n")
        assert _answer(sock).startswith(b"HTTP/1.1 431")
    with urllib.request.urlopen(f"http://{server.HOST}:{running.port}/metrics", timeout=5) as response:
        metrics = response.read().decode()
    assert 'cmar_requests_total{method="OTHER",route="unmatched",status="431"}' in metrics  # the server's own, counted


def test_slow_headers_are_timed_out(served: tuple[server.Server, Path]) -> None:
    running, _ = served
    with _connect(running.port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 4, answer[:80]
    with _connect(running.port) as idle:  # connected, never sends a byte
        started = time.monotonic()
        assert _answer(idle).startswith(b"HTTP/1.1 408") and time.monotonic() - started < 4


def test_slow_connections_past_the_cap_make_room_for_new_clients(served: tuple[server.Server, Path]) -> None:
    running, _ = served
    held = []
    for _ in range(40):  # the cap is 16: each new one closes the slowest
        sock = _connect(running.port)
        sock.sendall(b"GET /heal")
        held.append(sock)
    try:
        time.sleep(0.2)
        assert server.get_json(running.port, "/healthz") == {"status": "ok"}  # served while they are held
        evicted = sum(_answer_now(sock).startswith(b"HTTP/1.1 503") for sock in held)
        assert evicted >= 40 - 16
    finally:
        for sock in held:
            sock.close()


def _answer_now(sock: socket.socket) -> bytes:
    sock.settimeout(0.2)
    try:
        return sock.recv(64)
    except (TimeoutError, ConnectionResetError):
        return b""


def test_a_forged_log_line_stays_one_line(served: tuple[server.Server, Path]) -> None:
    running, log = served
    with _connect(running.port) as sock:
        sock.sendall(
            b"GET /artists/x%0A2026-01-01%20INFO%20forged/similar HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        )
        assert _answer(sock).startswith(b"HTTP/1.1 404")
    time.sleep(0.3)
    lines = log.read_text(errors="replace").splitlines()
    assert not any(line.startswith("2026-01-01 INFO forged") for line in lines)
    assert any("x\\n2026-01-01 INFO forged" in line for line in lines)


def test_a_restart_on_the_same_port_after_a_connected_stop(built: Built, tmp_path: Path) -> None:
    env = {"CMAR_WRITES_DB": str(tmp_path / "writes.sqlite3")}
    first = server.start(built.model, built.index, tmp_path / "a.log", env)
    port = first.port
    sock = _connect(port)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
    sock.recv(1024)  # a kept-alive connection: the server's side goes to TIME_WAIT
    first.stop()
    sock.close()
    with server.start(built.model, built.index, tmp_path / "b.log", env, port=port) as second:
        assert server.get_json(second.port, "/healthz") == {"status": "ok"}


def test_a_large_body_sent_with_its_headers_is_not_counted_as_headers(served: tuple[server.Server, Path]) -> None:
    running, _ = served
    filler = ", ".join(f'"{"z" * 90}{i}"' for i in range(900))
    body = ('{"tag": [' + filler + '], "k": 3}').encode()  # about 90 kB, more than the 8 kB header limit
    head = b"POST /similar HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nconnection: close\r\n"
    with _connect(running.port) as sock:
        sock.sendall(head + b"content-length: %d\r\n\r\n" % len(body) + body)  # one write
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 422"), answer[:200]  # none of the tags is known: the app answered


def test_pipelined_requests_in_one_write_are_all_answered(served: tuple[server.Server, Path]) -> None:
    running, _ = served
    one = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-pad: " + b"p" * 900 + b"\r\n\r\n"
    with _connect(running.port) as sock:
        sock.sendall(one * 30 + b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        answer = _answer(sock)
    assert answer.count(b"HTTP/1.1 200") == 31, answer.count(b"HTTP/1.1 200")


def test_the_servers_own_refusals_carry_ids_and_versions(served: tuple[server.Server, Path]) -> None:
    running, _ = served
    with _connect(running.port) as sock:
        sock.sendall(b"BREW /healthz HTCPCP/1.0\r\n\r\n")
        answer = _answer(sock).lower()
    assert answer.startswith(b"http/1.1 400")
    assert b"x-request-id: " in answer and b"x-model-version: " in answer and b"x-index-version: " in answer


def test_a_slow_body_is_timed_out(served: tuple[server.Server, Path]) -> None:
    running, _ = served
    with _connect(running.port) as sock:
        sock.sendall(
            b"POST /similar HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"
        )
        started = time.monotonic()
        answer = _answer(sock)
    assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 4, answer[:100]


def test_a_pipelined_requests_headers_count_against_the_limit(served: tuple[server.Server, Path]) -> None:
    running, _ = served
    first = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
    second = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-pad: " + b"p" * 30_000 + b"\r\n\r\n"
    with _connect(running.port) as sock:
        sock.sendall(first + second)  # one write: the second head is inside the first read
        answer = _answer(sock)
    assert b"HTTP/1.1 431" in answer and answer.count(b"HTTP/1.1 200") <= 1, answer[:300]


def test_trailers_are_bounded(served: tuple[server.Server, Path]) -> None:
    running, _ = served
    head = b"POST /similar HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    body = b'{"cf": [0]}'
    chunked = b"%x\r\n" % len(body) + body + b"\r\n0\r\n"
    trailers = b"".join(b"x-t%d: " % i + b"t" * 2000 + b"\r\n" for i in range(20)) + b"\r\n"
    with _connect(running.port) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(head + chunked + trailers)
        answer = _answer(sock)
    assert b"HTTP/1.1 200" not in answer  # 40 kB of trailers against an 8 kB limit: closed or refused
    assert server.get_json(running.port, "/healthz") == {"status": "ok"}


def test_clients_that_pipeline_without_reading_are_cut_off(served: tuple[server.Server, Path]) -> None:
    running, _ = served
    many = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n" * 400
    with _connect(running.port) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(many)
        answer = _answer(sock)
    assert answer.count(b"HTTP/1.1 200") < 400  # closed past 64 queued requests


def test_an_upgrade_request_is_answered_by_the_app_with_its_headers(served: tuple[server.Server, Path]) -> None:
    running, _ = served
    with _connect(running.port) as sock:
        sock.sendall(
            b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\n"
            b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
        )
        sock.settimeout(2)
        answer = sock.recv(4096).lower()
    assert answer.startswith(b"http/1.1 200") and b"x-request-id: " in answer


def test_slow_bodies_past_the_cap_make_room_for_new_clients(served: tuple[server.Server, Path]) -> None:
    running, _ = served
    held = []
    head = b"POST /similar HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{"
    for _ in range(24):  # the cap is 16: each holds a body the app cannot answer yet
        sock = _connect(running.port)
        sock.sendall(head)
        held.append(sock)
    try:
        time.sleep(0.3)
        assert server.get_json(running.port, "/healthz") == {"status": "ok"}  # served while they are held
    finally:
        for sock in held:
            sock.close()
