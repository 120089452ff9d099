"""`cmar check faults`: a live `cmar serve` under faults and floods, with every figure in a report.

Each part starts its own server on this machine (127.0.0.1 only), measures, and stops it:
- replay: start-up time with 0, 1k, 10k (and, unless skipped, 100k) stored writes;
- floods: one connection streaming headers without end; slow connections beyond the
  connection cap; long junk query strings; the server's memory before and after each, and
  whether a fresh client is still served;
- store faults: the database and its WAL removed while the server runs (PUTs must be 503
  and readiness must say so), damaged rows at start-up (skipped by name, counted);
- races: PUT/DELETE of one artist against GETs of its similar list (no 5xx);
- swap under stored writes: how long readiness and reads wait while a swap replays them.
Writes faults.json and faults.md; raises CmarError if any check fails.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from bench import server
from bench.checks import KEY, _demo
from core.artifacts import vocab_names_file
from core.errors import CmarError
from core.store import WriteStore
from inference.index import load_index

log = logging.getLogger(__name__)


def _request(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"content-type": "application/json", "x-api-key": KEY}
    request = urllib.request.Request(f"http://{server.HOST}:{port}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def _bodies(model_index: Path, n: int, seed: int) -> list[dict[str, Any]]:
    """n PUT bodies: a name and three tags of the served model's vocabulary."""
    vocab = json.loads((model_index / vocab_names_file("tag")).read_text())
    rng = np.random.default_rng(seed)
    return [{"name": f"Written {i}", "tag": rng.choice(vocab, size=3, replace=False).tolist()} for i in range(n)]


def _fill(db: Path, bodies: list[dict[str, Any]]) -> None:
    """A write database holding `bodies` as artists w0, w1, ... (made under another name, then renamed)."""
    partial = db.with_name(db.name + ".partial")
    for stale in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
        stale.unlink(missing_ok=True)
    store = WriteStore(partial)
    store._db.execute("PRAGMA synchronous=OFF")  # filling the fixture only; the server writes with FULL
    for i, body in enumerate(bodies):
        store.put(f"w{i}", body)
    store.close()
    partial.rename(db)


def check_replay(work: Path, model: Path, index: Path, sizes: list[int]) -> list[dict[str, Any]]:
    """Start-up time with each number of stored writes (the first size should be 0: the baseline)."""
    rows = []
    for n in sizes:
        db = work / f"replay-{n}.sqlite3"
        if not db.exists():
            _fill(db, _bodies(model, n, seed=n))
        with server.start(model, index, work / "replay.log", {"CMAR_WRITES_DB": str(db)}) as running:
            ready = server.get_json(running.port, "/readyz")
            rows.append({"writes": n, "startup_s": round(running.startup_s, 2), "n_artists": ready["n_artists"]})
        log.info("replay of %d stored writes: ready after %.1f s", n, running.startup_s)
    return rows


def _fresh_client_served(port: int) -> bool:
    try:
        return server.get_json(port, "/healthz", timeout=5) == {"status": "ok"}
    except OSError:
        return False


def check_floods(work: Path, model: Path, index: Path) -> dict[str, Any]:
    """Header flood, slow connections past the cap, junk query strings: memory and service."""
    env = {"CMAR_WRITES_DB": str(work / "floods.sqlite3"), "CMAR_HEADER_TIMEOUT": "3", "CMAR_MAX_CONNECTIONS": "200"}
    out: dict[str, Any] = {}
    with server.start(model, index, work / "floods.log", env) as running:
        port, base = running.port, running.rss_mb()
        with socket.create_connection((server.HOST, port), timeout=10) as sock:  # 200 MB of headers, offered
            sent, answer = 0, b""
            sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
            line = b"x-flood: " + b"a" * 8000 + b"\r\n"
            try:
                while sent < 200 * 2**20:
                    sock.sendall(line)
                    sent += len(line)
            except OSError:
                pass
            with contextlib.suppress(OSError):
                answer = sock.recv(200)
        out["header_flood"] = {
            "bytes_accepted_before_refusal": sent,
            "answer": answer.split(b"\r\n", 1)[0].decode(errors="replace"),
            "rss_growth_mb": round(running.rss_mb() - base, 1),
            "fresh_client_served": _fresh_client_served(port),
        }
        held, refused = [], 0
        for _ in range(300):  # 100 more than the cap, each sending half a request line
            try:
                sock = socket.create_connection((server.HOST, port), timeout=5)
                sock.sendall(b"GET /heal")
                held.append(sock)
            except OSError:
                refused += 1
        time.sleep(0.5)
        answers = []
        for sock in held:
            sock.settimeout(0.01)
            try:
                answers.append(sock.recv(12))
            except OSError:
                answers.append(b"")
        busy = sum(a.startswith(b"HTTP/1.1 503") for a in answers)
        served_during = _fresh_client_served(port)
        time.sleep(3.5)  # past the header timeout: every slow connection is closed
        out["slow_connections"] = {
            "opened": len(held) + refused,
            "refused_with_503": busy,
            "fresh_client_served_while_held": served_during,
            "fresh_client_served_after_header_timeout": _fresh_client_served(port),
        }
        for sock in held:
            sock.close()
        artist = load_index(index, verify=False).artist_ids[0]
        before = running.rss_mb()
        for i in range(5000):
            junk = "x" * 1000 + str(i)
            _request(port, "GET", f"/artists/{artist}/similar?k=10&junk={junk}")
        out["junk_queries"] = {"requests": 5000, "rss_growth_mb": round(running.rss_mb() - before, 1)}
    return out


def check_store_faults(work: Path, model: Path, index: Path) -> dict[str, Any]:
    """The database removed while serving; damaged rows at start-up."""
    db = work / "faults.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    env = {"CMAR_WRITES_DB": str(db), "CMAR_API_KEY": KEY}
    bodies = _bodies(model, 3, seed=1)
    out: dict[str, Any] = {}
    with server.start(model, index, work / "faults.log", env) as running:
        first, _ = _request(running.port, "PUT", "/artists/kept", bodies[0])
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        status, answer = _request(running.port, "PUT", "/artists/lost", bodies[1])
        ready = server.get_json(running.port, "/readyz")
        served, _ = _request(running.port, "GET", "/artists/lost")
        out["database_removed"] = {
            "put_before": first,
            "put_after": status,
            "detail": json.loads(answer).get("detail"),
            "readyz_writes_available": ready["writes_available"],
            "refused_write_served": served == 200,
        }
    _fill(db, bodies)
    con = sqlite3.connect(db)
    con.execute("UPDATE artists SET body = '{broken' WHERE artist_id = 'w1'")
    con.execute("UPDATE artists SET seq = 'x' WHERE artist_id = 'w2'")
    con.commit()
    con.close()
    with server.start(model, index, work / "faults.log", env) as running:
        ready = server.get_json(running.port, "/readyz")
        good, _ = _request(running.port, "GET", "/artists/w0")
        out["damaged_rows"] = {
            "started": True,
            "skipped_writes": ready["skipped_writes"],
            "good_row_served": good == 200,
        }
    return out


def check_races(work: Path, model: Path, index: Path, rounds: int = 1500) -> dict[str, Any]:
    """PUT/DELETE one artist in a loop while GETs read its similar list; count every status."""
    env = {"CMAR_WRITES_DB": str(work / "races.sqlite3"), "CMAR_API_KEY": KEY}
    target = load_index(index, verify=False).artist_ids[3]
    body = _bodies(model, 1, seed=2)[0]
    statuses: dict[int, int] = {}
    with server.start(model, index, work / "races.log", env) as running:
        stop = threading.Event()

        def writer() -> None:
            while not stop.is_set():
                _request(running.port, "PUT", f"/artists/{target}", body)
                _request(running.port, "DELETE", f"/artists/{target}")

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            for i in range(rounds):
                status, _ = _request(running.port, "GET", f"/artists/{target}/similar?k={5 + i % 400}")
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            stop.set()
            thread.join()
    return {"gets": rounds, "statuses": {str(k): v for k, v in sorted(statuses.items())}}


def check_swap_stall(work: Path, model: Path, index: Path, n_writes: int = 9000) -> dict[str, Any]:
    """Swap with `n_writes` stored writes while probing /readyz: the longest wait a reader saw."""
    db = work / f"swap-{n_writes}.sqlite3"
    if not db.exists():
        _fill(db, _bodies(model, n_writes, seed=3))
    with server.start(model, index, work / "swap.log", {"CMAR_WRITES_DB": str(db), "CMAR_API_KEY": KEY}) as running:
        waits: list[float] = []
        done = threading.Event()

        def probe() -> None:
            while not done.is_set():
                t0 = time.perf_counter()
                server.get_json(running.port, "/readyz", timeout=120)
                waits.append(time.perf_counter() - t0)
                time.sleep(0.02)

        thread = threading.Thread(target=probe)
        thread.start()
        t0 = time.perf_counter()
        status, answer = _request(running.port, "POST", "/admin/swap", {})
        swap_s = time.perf_counter() - t0
        done.set()
        thread.join()
    return {
        "stored_writes": n_writes,
        "swap_status": status,
        "replayed": json.loads(answer).get("replayed_writes"),
        "swap_s": round(swap_s, 2),
        "readyz_max_wait_ms": round(1000 * max(waits, default=0.0), 1),
        "readyz_probes": len(waits),
    }


def _failures(report: dict[str, Any]) -> list[str]:
    floods, store, races, swap = report["floods"], report["store"], report["races"], report["swap"]
    checks = {
        "header flood refused with 431": floods["header_flood"]["answer"].startswith("HTTP/1.1 431"),
        "header flood costs < 20 MB": floods["header_flood"]["rss_growth_mb"] < 20,
        "served after a header flood": floods["header_flood"]["fresh_client_served"],
        "slow connections over the cap closed": floods["slow_connections"]["refused_with_503"] > 0,
        "served while slow connections fill the cap": floods["slow_connections"]["fresh_client_served_while_held"],
        "served after the header timeout": floods["slow_connections"]["fresh_client_served_after_header_timeout"],
        "junk queries cost < 20 MB": floods["junk_queries"]["rss_growth_mb"] < 20,
        "removed database: PUT is 503": store["database_removed"]["put_after"] == 503,
        "removed database: readiness says so": store["database_removed"]["readyz_writes_available"] is False,
        "removed database: refused write not served": not store["database_removed"]["refused_write_served"],
        "damaged rows skipped and counted": store["damaged_rows"]["skipped_writes"] == 2,
        "no 5xx in races": not any(int(s) >= 500 for s in races["statuses"]),
        "swap succeeded": swap["swap_status"] == 200,
        "readiness answered within 1 s during the swap": swap["readyz_max_wait_ms"] < 1000,
    }
    report["checks"] = checks
    return [name for name, ok in checks.items() if not ok]


def _markdown(report: dict[str, Any]) -> str:
    lines = ["# cmar check faults", "", "| stored writes | start-up (s) |", "| ---: | ---: |"]
    lines += [f"| {r['writes']:,} | {r['startup_s']} |" for r in report["replay"]]
    lines += ["", "| check | result |", "| --- | --- |"]
    lines += [f"| {name} | {'pass' if ok else 'FAIL'} |" for name, ok in report["checks"].items()]
    lines += ["", "```json", json.dumps({k: v for k, v in report.items() if k not in ("checks", "replay")}, indent=1)]
    return "\n".join([*lines, "```", ""])


def check_faults(out: Path, epochs: int | None = None, sizes: list[int] | None = None) -> dict[str, Any]:
    """Run every part; write faults.json and faults.md to `out`; CmarError if a check fails."""
    work = out / "work-faults"
    _, model, index = _demo(work, 0, epochs)
    report: dict[str, Any] = {"replay": check_replay(work, model, index, sizes or [0, 1000, 10_000, 100_000])}
    report["floods"] = check_floods(work, model, index)
    report["store"] = check_store_faults(work, model, index)
    report["races"] = check_races(work, model, index)
    report["swap"] = check_swap_stall(work, model, index)
    failed = _failures(report)
    (out / "faults.json").write_text(json.dumps(report, indent=1))
    (out / "faults.md").write_text(_markdown(report))
    if failed:
        raise CmarError(f"cmar check faults: {len(failed)} check(s) failed: {'; '.join(failed)} (see {out})")
    return report
