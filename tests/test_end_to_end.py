"""One end-to-end run: synthetic catalogue, one epoch, export, build, HTTP queries; and the real server."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from catalog.synthetic import read_styles
from cli.main import main
from service.app import create_app
from service.settings import Settings
from tests.conftest import Built


def test_run_then_query_over_http(tmp_path: Path) -> None:
    work = tmp_path / "work"
    catalog = tmp_path / "catalog"
    assert main(["-q", "catalog", "synthetic", str(catalog), "--n-artists", "500", "--n-styles", "5"]) == 0
    assert main(["-q", "run", "--catalog", str(catalog), "--workdir", str(work), "--epochs", "1", "--no-serve"]) == 0
    settings = Settings(model_dir=work / "model", index_dir=work / "index")
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and ready["modalities"] == ["audio", "cf", "tag"]
        body = client.get("/artists/a0000001/similar", params={"k": 5}).json()
        assert len(body["results"]) == 5 and all(r["artist_id"] != "a0000001" for r in body["results"])
        cold = client.post("/similar", json={"tag": ["style01-tag0", "style01-tag1"], "k": 20}).json()
        assert len(cold["results"]) == 20
        # Even after one epoch, a style's own tags should find mostly that style's artists.
        styles = read_styles(catalog)
        found = [styles[int(r["artist_id"][1:])] for r in cold["results"]]
        assert sum(s == 1 for s in found) > 20 / 5


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cmar_serve_starts_a_real_server(built: Built) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli.main",
            "serve",
            "--model",
            str(built.model),
            "--index",
            str(built.index),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        assert r.json() == {"status": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["status"] == "ready"
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert f"API on http://127.0.0.1:{port}" in output
