"""Request ids in headers and logs, JSON log lines, Prometheus metrics by route and status."""

import io
import json
import logging
from pathlib import Path

from fastapi.testclient import TestClient

from inference.index import load_index
from service.app import create_app
from service.observe import JsonFormatter
from service.settings import Settings
from tests.conftest import Built


def test_request_ids_metrics_and_json_logs(built: Built, tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    artist = load_index(built.index, verify=False).artist_ids[2]
    settings = Settings(
        model_dir=built.model, index_dir=built.index, writes_db=tmp_path / "w.sqlite3", api_key="k", access_log=True
    )
    try:
        with TestClient(create_app(settings)) as client:
            fast = client.get(f"/artists/{artist}/similar")
            routed = client.get(f"/artists/{artist}/similar", params={"k": 300})
            missing = client.get("/artists/nobody/similar", headers={"X-Request-ID": "trace-42"})
            odd = client.get("/healthz", headers={"X-Request-ID": "not valid!"})
            metrics = client.get("/metrics").text
            versions = client.get("/readyz").json()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    ids = [r.headers["x-request-id"] for r in (fast, routed, odd)]
    assert len(set(ids)) == 3 and missing.headers["x-request-id"] == "trace-42" and "!" not in ids[2]
    route = 'route="/artists/{artist_id}/similar"'
    assert f'cmar_requests_total{{method="GET",{route},status="200"}} 2.0' in metrics
    assert f'cmar_requests_total{{method="GET",{route},status="404"}} 1.0' in metrics
    assert f'cmar_request_seconds_count{{method="GET",{route},status="200"}} 2.0' in metrics
    assert f'cmar_request_seconds_count{{method="GET",{route},status="404"}} 1.0' in metrics
    buckets = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("cmar_request_seconds_bucket") and route in line and 'status="200"' in line
    ]
    assert buckets == sorted(buckets) and buckets[-1] == 2.0  # cumulative, and +Inf counts every request
    assert f'cmar_request_seconds_bucket{{le="+Inf",method="GET",{route},status="200"}} 2.0' in metrics
    served = f'index_version="{versions["index_version"]}",model_version="{versions["model_version"]}"'
    assert f"cmar_model_info{{{served}}} 1.0" in metrics
    assert f"cmar_index_artists {float(versions['n_artists'])}" in metrics
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    access = [x for x in lines if x["logger"] == "cmar.access"]
    assert {x["request_id"] for x in access} >= {*ids, "trace-42"}
    assert any(x["status"] == 404 and x["path"] == "/artists/nobody/similar" for x in access)
