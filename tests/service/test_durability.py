"""An acknowledged write survives SIGKILL: the server is killed mid-flight and restarted."""

import json
import signal
import urllib.request
from pathlib import Path

from bench import server
from inference.index import load_index
from tests.conftest import Built

N_WRITES = 25
KEY = "durable-key"


def _put(port: int, artist_id: str, body: dict[str, object]) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/artists/{artist_id}",
        data=json.dumps(body).encode(),
        method="PUT",
        headers={"content-type": "application/json", "authorization": f"Bearer {KEY}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def test_every_acknowledged_write_is_there_after_sigkill(built: Built, tmp_path: Path) -> None:
    env = {"CMAR_API_KEY": KEY, "CMAR_WRITES_DB": str(tmp_path / "writes.sqlite3")}
    dim = load_index(built.index, verify=False).manifest.model.modalities["audio"].input_dim
    acknowledged = []
    with server.start(built.model, built.index, tmp_path / "server.log", env) as first:
        for i in range(N_WRITES):
            body = {"name": f"Signed {i}", "audio": [float((i * 7 + j) % 5) for j in range(dim)]}
            assert _put(first.port, f"signed-{i}", body) == 201
            acknowledged.append(f"signed-{i}")
        first.process.send_signal(signal.SIGKILL)  # no shutdown, no checkpoint
        first.process.wait(10)
    with server.start(built.model, built.index, tmp_path / "server.log", env) as second:
        for artist_id in acknowledged:
            found = server.get_json(second.port, f"/artists/{artist_id}")
            assert found["name"] == f"Signed {acknowledged.index(artist_id)}"
        similar = server.get_json(second.port, f"/artists/{acknowledged[0]}/similar?k=3")
        assert len(similar["results"]) == 3  # type: ignore[arg-type]
