"""Writes go live at once, survive a restart, need the key; swaps verify before they serve."""

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np
import pytest
from fastapi.testclient import TestClient

from catalog.io import read_catalog
from catalog.tables import SetTable, VectorTable
from core.manifest import write_manifest
from index_build.build import build_index
from inference.index import load_index
from service.app import create_app
from service.artifacts import INDEX_HEADER
from service.search import quick_similar_json, search
from service.settings import Settings
from tests.conftest import Built

KEY = "s3cret-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def _settings(built: Built, db: Path, **extra: object) -> Settings:
    return Settings(model_dir=built.model, index_dir=built.index, writes_db=db, api_key=KEY, **extra)  # type: ignore[arg-type]


@pytest.fixture
def client(built: Built, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(built, tmp_path / "writes.sqlite3"))) as c:
        yield c


def _body_of(built: Built, artist_id: str, name: str) -> dict[str, object]:
    """A PUT body with every input an existing artist has: its twin."""
    catalog = read_catalog(built.catalog)
    row = int(np.flatnonzero(catalog.artist_ids == artist_id)[0])
    body: dict[str, object] = {"name": name}
    for modality, table in catalog.modalities.items():
        if not table.present[row]:
            continue
        if isinstance(table, VectorTable):
            body[modality] = table.values[row].tolist()
        elif isinstance(table, SetTable):
            span = slice(table.indptr[row], table.indptr[row + 1])
            body[modality] = {
                table.vocab[i]: float(w) for i, w in zip(table.items[span], table.weights[span], strict=True)
            }
    return body


def _indexed(built: Built, i: int) -> str:
    return load_index(built.index, verify=False).artist_ids[i]


def test_a_new_artist_is_served_at_once_and_appears_in_others_lists(client: TestClient, built: Built) -> None:
    target = _indexed(built, 11)
    before = client.get("/readyz").json()["n_artists"]
    r = client.put("/artists/new-1", json=_body_of(built, target, "Newcomer"), headers=AUTH)
    assert r.status_code == 201, r.text
    assert r.json()["created"] is True and r.json()["name"] == "Newcomer"
    assert client.get("/artists/new-1").json()["name"] == "Newcomer"
    assert client.get("/readyz").json()["n_artists"] == before + 1
    # the twin of `target` is the first in target's list and the other way round
    first = client.get(f"/artists/{target}/similar", params={"k": 5}).json()["results"][0]
    assert first["artist_id"] == "new-1" and first["score"] == pytest.approx(1.0, abs=1e-4)
    own = client.get("/artists/new-1/similar", params={"k": 5}).json()["results"]
    assert own[0]["artist_id"] == target and "new-1" not in [x["artist_id"] for x in own]
    assert client.post("/similar", json={**_body_of(built, target, "x"), "k": 3} | {"name": None}).status_code == 422


def test_replace_and_delete(client: TestClient, built: Built) -> None:
    target = _indexed(built, 11)
    other = _indexed(built, 40)
    r = client.put(f"/artists/{other}", json=_body_of(built, target, "Renamed"), headers=AUTH)
    assert r.status_code == 200 and r.json()["created"] is False
    assert client.get(f"/artists/{other}").json()["name"] == "Renamed"
    assert client.delete(f"/artists/{other}", headers=AUTH).json()["deleted"] is True
    assert client.get(f"/artists/{other}").status_code == 404
    assert client.get(f"/artists/{other}/similar").status_code == 404
    listed = client.get(f"/artists/{target}/similar", params={"k": 200}).json()["results"]
    assert other not in [x["artist_id"] for x in listed]
    assert client.delete(f"/artists/{other}", headers=AUTH).status_code == 404


def test_writes_survive_a_restart(built: Built, tmp_path: Path) -> None:
    db = tmp_path / "writes.sqlite3"
    target = _indexed(built, 11)
    with TestClient(create_app(_settings(built, db))) as c:
        assert c.put("/artists/kept", json=_body_of(built, target, "Kept"), headers=AUTH).status_code == 201
        assert c.put("/artists/gone", json=_body_of(built, target, "Gone"), headers=AUTH).status_code == 201
        assert c.delete("/artists/gone", headers=AUTH).status_code == 200
    with TestClient(create_app(_settings(built, db))) as c:
        assert c.get("/artists/kept").json()["name"] == "Kept"
        assert c.get("/artists/gone").status_code == 404


def test_keys_are_required_for_writes_and_optional_for_reads(built: Built, tmp_path: Path) -> None:
    body = _body_of(built, _indexed(built, 11), "X")
    with TestClient(create_app(_settings(built, tmp_path / "a.sqlite3"))) as c:
        missing = c.put("/artists/x", json=body)
        assert missing.status_code == 401 and "API key" in missing.json()["detail"]
        wrong = c.put("/artists/x", json=body, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 403 and "not valid" in wrong.json()["detail"]
        assert c.put("/artists/x", json=body, headers={"X-API-Key": KEY}).status_code == 201
        assert c.post("/admin/swap", json={}).status_code == 401
    settings = Settings(model_dir=built.model, index_dir=built.index, writes_db=tmp_path / "b.sqlite3")
    with TestClient(create_app(settings)) as c:
        r = c.put("/artists/x", json=body, headers=AUTH)
        assert r.status_code == 403 and "CMAR_API_KEY" in r.json()["detail"]
    closed = _settings(built, tmp_path / "c.sqlite3", read_key_required=True)
    with TestClient(create_app(closed)) as c:
        artist = _indexed(built, 11)
        assert c.get(f"/artists/{artist}/similar").status_code == 401  # the fast path does not bypass it
        assert c.get(f"/artists/{artist}/similar", headers=AUTH).status_code == 200


def test_limits_say_what_they_are(client: TestClient, built: Built) -> None:
    huge = client.post(
        "/similar", content=b'{"audio": [' + b"1.0," * 400_000 + b"1.0]}", headers={"content-type": "application/json"}
    )
    assert huge.status_code == 413 and "limit is 1048576 bytes" in huge.json()["detail"]
    chunks = (b'{"audio": [' if i == 0 else b"1.0," * 10_000 for i in range(40))  # no length: chunked
    chunked = client.post("/similar", content=chunks, headers={"content-type": "application/json"})
    assert chunked.status_code == 413 and "limit is 1048576 bytes" in chunked.json()["detail"]
    many = client.post("/similar", json={"tag": [f"t{i}" for i in range(1001)]})
    assert many.status_code == 422 and "1000" in many.json()["detail"][0]["msg"]
    assert client.put("/artists/x", json={"name": "", "audio": [1.0]}, headers=AUTH).status_code == 422


def _swap(client: TestClient, index: Path) -> object:
    return client.post("/admin/swap", json={"index_dir": str(index)}, headers=AUTH)


def test_a_swap_serves_the_new_index_with_the_writes_replayed(client: TestClient, built: Built, tmp_path: Path) -> None:
    target = _indexed(built, 11)
    assert client.put("/artists/live", json=_body_of(built, target, "Live"), headers=AUTH).status_code == 201
    build_index(built.catalog, built.model, tmp_path / "next", progress=False, hub_beta=0.0)
    old_version = client.get("/readyz").json()["index_version"]
    r = _swap(client, tmp_path / "next")
    assert r.status_code == 200, r.text  # type: ignore[attr-defined]
    result = r.json()  # type: ignore[attr-defined]
    assert result["previous_index_version"] == old_version and result["index_version"] != old_version
    assert result["replayed_writes"] == 1
    after = client.get("/artists/live/similar")
    assert after.status_code == 200 and after.headers[INDEX_HEADER] == result["index_version"]


def _broken(built: Built, tmp_path: Path, how: str) -> Path:
    folder = tmp_path / how
    shutil.copytree(built.index, folder)
    index_file = folder / "index.faiss"
    if how == "truncated":
        index_file.write_bytes(index_file.read_bytes()[:1000])
    elif how == "hash":
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["files"]["artists.parquet"]["sha256"] = "0" * 64
        (folder / "manifest.json").write_text(json.dumps(manifest))
    elif how == "dimension":
        small = faiss.IndexFlatIP(50)
        small.add(np.zeros((3, 50), dtype=np.float32))
        faiss.write_index(small, str(index_file))
        manifest_text = (folder / "manifest.json").read_text()
        from core.manifest import IndexManifest

        write_manifest(folder, IndexManifest.model_validate_json(manifest_text))  # consistent hashes, wrong content
    elif how == "schema":
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["schema_version"] = 99
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("truncated", "index.faiss"),
        ("hash", "sha256"),
        ("dimension", "dimension 207"),  # 200 and a coordinate per modality subset of the balance
        ("schema", "99"),
    ],
)
def test_a_broken_swap_is_refused_and_the_old_artifacts_keep_serving(
    client: TestClient, built: Built, tmp_path: Path, how: str, message: str
) -> None:
    before = client.get("/readyz").json()
    r = _swap(client, _broken(built, tmp_path, how))
    assert r.status_code == 409  # type: ignore[attr-defined]
    detail = r.json()["detail"]  # type: ignore[attr-defined]
    assert "still serving the old artifacts" in detail and message in detail, detail
    assert client.get("/readyz").json() == before
    artist = _indexed(built, 11)
    assert client.get(f"/artists/{artist}/similar").status_code == 200


def test_the_next_offline_build_takes_the_writes_in(built: Built, tmp_path: Path) -> None:
    from catalog.io import read_catalog
    from cli.main import main

    db = tmp_path / "writes.sqlite3"
    target, gone = _indexed(built, 11), _indexed(built, 40)
    with TestClient(create_app(_settings(built, db))) as c:
        assert c.put("/artists/fresh", json=_body_of(built, target, "Fresh"), headers=AUTH).status_code == 201
        assert c.delete(f"/artists/{gone}", headers=AUTH).status_code == 200
    assert main(["catalog", "add-writes", str(built.catalog), "--db", str(db), "--out", str(tmp_path / "next")]) == 0
    before, after = read_catalog(built.catalog), read_catalog(tmp_path / "next")
    assert after.n_artists == before.n_artists and "fresh" in after.artist_ids and gone not in after.artist_ids
    row, twin = int(np.flatnonzero(after.artist_ids == "fresh")[0]), int(np.flatnonzero(before.artist_ids == target)[0])
    for name, table in after.modalities.items():
        assert table.present[row] == before.modalities[name].present[twin]
    manifest = build_index(tmp_path / "next", built.model, tmp_path / "index", progress=False)
    assert manifest.n_artists == load_index(built.index, verify=False).manifest.n_artists  # one in, one out


def test_lists_merged_with_the_writes_equal_a_full_search(client: TestClient, built: Built) -> None:
    assert (
        client.put("/artists/twin", json=_body_of(built, _indexed(built, 11), "Twin"), headers=AUTH).status_code == 201
    )
    for i in (12, 13, 14):
        assert client.delete(f"/artists/{_indexed(built, i)}", headers=AUTH).status_code == 200
    artifacts = client.app.state.serving.artifacts  # type: ignore[attr-defined]
    for i in range(0, 300, 15):
        artist = _indexed(built, i)
        if artifacts.artist(artist) is None:
            continue
        quick = quick_similar_json(artifacts, artist, 20)
        assert quick is not None
        slot = artifacts.slot_of(artist)
        searched = search(artifacts, artifacts.vector_of(artist), 20, exclude=artist, slot=slot)
        got = json.loads(quick)
        assert [x["artist_id"] for x in got] == [h.artist_id for h in searched]
        np.testing.assert_allclose([x["score"] for x in got], [h.score for h in searched], atol=1e-5)


def test_a_dry_run_swap_reports_the_churn_and_swaps_nothing(client: TestClient, built: Built, tmp_path: Path) -> None:
    before = client.get("/readyz").json()["index_version"]
    same = client.post("/admin/swap", json={"dry_run": True}, headers=AUTH)  # the served folders again
    assert same.status_code == 200, same.text
    result = same.json()
    assert result["swapped"] is False and result["churn"]["s10"] == 1.0 and result["churn"]["s200"] == 1.0
    n = client.get("/readyz").json()["n_artists"]
    assert result["churn"]["sampled"] == min(1000, n) and len(result["churn"]["most_changed"]) == 10
    build_index(built.catalog, built.model, tmp_path / "flat", progress=False, hub_beta=0.0)
    other = client.post("/admin/swap", json={"dry_run": True, "index_dir": str(tmp_path / "flat")}, headers=AUTH)
    churned = other.json()["churn"]
    assert other.status_code == 200 and 0 < churned["s10"] < 1  # no hub penalty: some lists change
    worst = churned["most_changed"]
    assert [w["s10"] for w in worst] == sorted(w["s10"] for w in worst) and worst[0]["s10"] <= churned["s10"]
    assert client.get("/readyz").json()["index_version"] == before  # nothing was swapped
    real = _swap(client, tmp_path / "flat")
    assert real.status_code == 200 and real.json()["swapped"] is True  # type: ignore[attr-defined]
    assert real.json()["churn"]["s10"] == churned["s10"]  # type: ignore[attr-defined]
