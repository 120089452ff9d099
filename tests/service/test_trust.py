"""Issue 10's kinds, one test each: names at every door, determinism, hostile strings, races,
store faults, swaps, headers on every response, HEAD, logs (the server-level limits are in
test_limits.py)."""

import json
import logging
import os
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from catalog.io import read_catalog
from catalog.tables import SetTable
from core.logs import SafeTextFormatter
from core.store import WriteStore
from inference.index import load_index
from service.app import create_app
from service.artifacts import INDEX_HEADER, MODEL_HEADER
from service.settings import Settings
from tests.conftest import Built

KEY = "trust-key"
AUTH = {"X-API-Key": KEY}


def _settings(built: Built, db: Path, **extra: object) -> Settings:
    return Settings(model_dir=built.model, index_dir=built.index, writes_db=db, api_key=KEY, **extra)  # type: ignore[arg-type]


@pytest.fixture
def client(built: Built, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(built, tmp_path / "writes.sqlite3")), raise_server_exceptions=False) as c:
        yield c


def _tags(built: Built) -> list[str]:
    tag = read_catalog(built.catalog).modalities["tag"]
    assert isinstance(tag, SetTable)
    return list(tag.vocab)


def _ids(r: object) -> list[str]:
    return [x["artist_id"] for x in r.json()["results"]]  # type: ignore[attr-defined]


# Kind 4: one name, one normalisation, at every door.


def test_tag_names_are_normalised_in_queries_and_writes(client: TestClient, built: Built) -> None:
    tag = _tags(built)[3]
    plain = client.post("/similar", json={"tag": [tag], "k": 5})
    assert plain.status_code == 200
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in tag.upper())
    for variant in ([tag.upper()], [f"  {tag.title()} "], {tag.upper(): 10}, [fullwidth]):
        r = client.post("/similar", json={"tag": variant, "k": 5})
        assert r.status_code == 200, (variant, r.text)
        assert _ids(r) == _ids(plain) and r.json()["unknown_tags"] == []
    r = client.put("/artists/norm", json={"name": "N", "tag": [f" {tag.upper()} "]}, headers=AUTH)
    assert r.status_code == 201 and r.json()["unknown_tags"] == []
    r = client.post("/similar", json={"tag": {tag: 1, tag.upper(): 2}})
    assert r.status_code == 422 and "same tag" in r.json()["detail"][0]["msg"]


@pytest.mark.parametrize("bad", ["AC%2FDC", "x%0Ay", "%2E%2E", "a" * 300])
def test_ids_the_api_cannot_address_are_refused_at_put(client: TestClient, bad: str) -> None:
    r = client.put(f"/artists/{bad}", json={"name": "X", "cf": [0.0]}, headers=AUTH)
    assert r.status_code in (404, 422), r.text
    if r.status_code == 422:
        assert r.json()["detail"][0]["loc"] == ["path", "artist_id"]


# Kind 5: answers that do not depend on accidents.


def test_order_of_equal_weight_tags_does_not_change_the_answer(client: TestClient, built: Built) -> None:
    tags = _tags(built)[:20]
    listed = client.post("/similar", json={"tag": dict.fromkeys(tags, 5), "k": 10})
    reversed_ = client.post("/similar", json={"tag": dict.fromkeys(reversed(tags), 5), "k": 10})
    as_list = client.post("/similar", json={"tag": list(reversed(tags)), "k": 10})
    assert listed.content == reversed_.content
    assert _ids(as_list) == _ids(listed)
    body = {"name": "Twenty", "tag": dict.fromkeys(tags, 5)}
    assert client.put("/artists/twenty", json=body, headers=AUTH).status_code == 201
    again = client.post("/similar", json={"tag": dict.fromkeys(reversed(tags), 5), "k": 1}).json()["results"][0]
    assert again["artist_id"] == "twenty" and again["score"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("weight", [0, 1e-9, 1e-300, -1])
def test_weights_that_would_vanish_are_refused(client: TestClient, built: Built, weight: float) -> None:
    tag = _tags(built)[0]
    for method, path, extra in (("POST", "/similar", {}), ("PUT", "/artists/tiny", {"name": "T"})):
        r = client.request(method, path, json={"tag": {tag: weight}, **extra}, headers=AUTH)
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "tag"], r.text
    assert client.get("/artists/tiny").status_code == 404


# Kind 7: no 5xx from client input; what failed is not stored; ids and versions everywhere.


SURROGATE = '"\\ud800"'


@pytest.mark.parametrize(
    ("method", "path", "raw"),
    [
        ("POST", "/similar", '{"tag": [@]}'.replace("@", SURROGATE)),
        ("POST", "/similar", '{"tag": {@: 3}}'.replace("@", SURROGATE)),
        ("PUT", "/artists/sur", '{"name": "ok", "tag": [@]}'.replace("@", SURROGATE)),
        ("PUT", "/artists/sur", '{"name": @, "cf": [1.0]}'.replace("@", SURROGATE)),
        ("POST", "/admin/swap", '{"model_dir": @}'.replace("@", SURROGATE)),
        ("POST", "/admin/swap", '{"model_dir": "@"}'.replace("@", "x" * 5000)),
        ("POST", "/admin/swap", '{"index_dir": "/tmp/@"}'.replace("@", "y" * 300)),
    ],
)
def test_hostile_strings_are_4xx_and_nothing_is_stored(
    client: TestClient, method: str, path: str, raw: str, tmp_path: Path
) -> None:
    r = client.request(method, path, content=raw.encode(), headers={**AUTH, "content-type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.headers["x-request-id"] and r.headers[MODEL_HEADER.lower()] and r.headers[INDEX_HEADER.lower()]
    assert client.get("/artists/sur").status_code == 404
    assert len(sqlite3.connect(tmp_path / "writes.sqlite3").execute("SELECT * FROM artists").fetchall()) == 0


def test_a_500_carries_the_request_id_and_versions_and_logs_it(
    client: TestClient, built: Built, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from service.artifacts import Artifacts

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected")

    from service.observe import JsonFormatter

    monkeypatch.setattr(Artifacts, "encode_modalities", boom)  # a bug, not a client's mistake
    with caplog.at_level(logging.ERROR):
        r = client.post("/similar", json={"tag": [_tags(built)[0]]}, headers={"X-Request-ID": "trace-me"})
    assert r.status_code == 500 and r.headers["x-request-id"] == "trace-me" and r.headers[MODEL_HEADER.lower()]
    assert "request id" in r.json()["detail"]
    lines = [JsonFormatter().format(rec) for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert any(json.loads(line)["request_id"] == "trace-me" and "injected" in line for line in lines)


def test_put_delete_races_never_give_a_5xx(client: TestClient, built: Built) -> None:
    target = load_index(built.index, verify=False).artist_ids[5]
    body = {"name": "racer", "tag": _tags(built)[:3]}
    stop = threading.Event()
    statuses: list[int] = []

    def writer() -> None:
        while not stop.is_set():
            client.put(f"/artists/{target}", json=body, headers=AUTH)
            client.delete(f"/artists/{target}", headers=AUTH)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for i in range(400):
            statuses.append(client.get(f"/artists/{target}/similar", params={"k": 10 + i % 300}).status_code)
    finally:
        stop.set()
        thread.join()
    assert set(statuses) <= {200, 404}, sorted(set(statuses))


# Kind 6: store integrity and honest write failures.


def test_a_removed_database_refuses_writes_with_503_and_readiness_says_so(built: Built, tmp_path: Path) -> None:
    db = tmp_path / "writes.sqlite3"
    with TestClient(create_app(_settings(built, db))) as client:
        assert (
            client.put("/artists/one", json={"name": "One", "tag": _tags(built)[:2]}, headers=AUTH).status_code == 201
        )
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        r = client.put("/artists/two", json={"name": "Two", "tag": _tags(built)[:2]}, headers=AUTH)
        assert r.status_code == 503 and "removed or replaced" in r.json()["detail"]
        assert client.get("/artists/two").status_code == 404  # failed, so not served
        ready = client.get("/readyz").json()
        assert ready["writes_available"] is False and "removed or replaced" in ready["writes_problem"]


class _FullDisk:
    """A connection whose inserts fail as SQLite's do on a full disk, while `full` is set."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con, self.full = con, True

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if self.full and sql.startswith("INSERT"):
            raise sqlite3.OperationalError("database or disk is full")
        return self.con.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self.con, name)


def test_a_full_disk_is_a_503_and_the_write_is_not_served(built: Built, tmp_path: Path) -> None:
    with TestClient(create_app(_settings(built, tmp_path / "w.sqlite3"))) as client:
        store = client.app.state.serving.live.store  # type: ignore[attr-defined]
        store._db = disk = _FullDisk(store._db)
        body = {"name": "Big", "tag": _tags(built)[:4]}
        r = client.put("/artists/big", json=body, headers=AUTH)
        assert r.status_code == 503 and "disk is full" in r.json()["detail"], r.text
        assert client.get("/artists/big").status_code == 404
        assert client.get("/readyz").json()["writes_available"] is False
        disk.full = False  # space again: the next write works
        assert client.put("/artists/big", json=body, headers=AUTH).status_code == 201
        assert client.get("/readyz").json()["writes_available"] is True
    assert [w.artist_id for w in WriteStore.read(tmp_path / "w.sqlite3")] == ["big"]


def test_a_read_only_database_starts_ready_without_writes(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "ro.sqlite3"
    with TestClient(create_app(_settings(built, db))) as client:
        kept = {"name": "Kept", "tag": _tags(built)[:2]}
        assert client.put("/artists/kept", json=kept, headers=AUTH).status_code == 201
    from core import store

    real = sqlite3.connect

    def read_only(*args: object, **kwargs: object) -> sqlite3.Connection:
        con = real(*args, **kwargs)  # type: ignore[arg-type]
        con.execute("PRAGMA query_only=1")  # as a read-only file or file system answers writes
        return con

    monkeypatch.setattr(store.sqlite3, "connect", read_only)
    with caplog.at_level(logging.WARNING), TestClient(create_app(_settings(built, db))) as client:
        assert any("cannot be written" in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
        assert client.get("/artists/kept").status_code == 200  # the stored write is served
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and ready["writes_available"] is False
        assert "cannot be written" in ready["writes_problem"]
        r = client.put("/artists/new", json={"name": "New", "tag": _tags(built)[:2]}, headers=AUTH)
        assert r.status_code == 503 and "cannot be written" in r.json()["detail"]
        assert client.get("/artists/new").status_code == 404


def test_damaged_rows_are_skipped_by_name_and_counted(
    built: Built, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "writes.sqlite3"
    with TestClient(create_app(_settings(built, db))) as client:
        for name in ("good", "broken", "badseq"):
            assert (
                client.put(f"/artists/{name}", json={"name": name, "tag": _tags(built)[:2]}, headers=AUTH).status_code
                == 201
            )
    con = sqlite3.connect(db)
    con.execute("UPDATE artists SET body = '{not json' WHERE artist_id = 'broken'")
    con.execute("UPDATE artists SET seq = 'seven' WHERE artist_id = 'badseq'")
    con.commit()
    con.close()
    with caplog.at_level(logging.WARNING), TestClient(create_app(_settings(built, db))) as client:
        assert client.get("/artists/good").status_code == 200
        assert client.get("/artists/broken").status_code == 404
        assert client.get("/readyz").json()["skipped_writes"] == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("writes.sqlite3: stored row" in w and "'broken'" in w and "not valid JSON" in w for w in warnings)
    assert any("'badseq'" in w and "not an integer" in w for w in warnings)


# Kind 8: swaps that verify one thing and serve another; swaps persisted.


def test_manifest_entries_outside_the_folder_are_refused_without_echoing_facts(
    client: TestClient, built: Built, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    shutil.copytree(built.index, index)
    manifest = json.loads((index / "manifest.json").read_text())
    for entry in ("../../../../../etc/shadow", "/etc/passwd"):
        manifest["files"] = {entry: {"sha256": "0" * 64, "bytes": 1}}
        (index / "manifest.json").write_text(json.dumps(manifest))
        r = client.post("/admin/swap", json={"index_dir": str(index)}, headers=AUTH)
        assert r.status_code == 409 and "not a file name inside the folder" in r.json()["detail"]
        assert "bytes, found" not in r.json()["detail"] and "sha256" not in r.json()["detail"]
    index2 = tmp_path / "index2"
    shutil.copytree(built.index, index2)
    (index2 / "artists.parquet").unlink()
    (index2 / "artists.parquet").symlink_to("/etc/hostname")
    r = client.post("/admin/swap", json={"index_dir": str(index2)}, headers=AUTH)
    assert r.status_code == 409 and "symbolic link" in r.json()["detail"]


def test_a_swap_is_served_again_after_a_restart(built: Built, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    other = tmp_path / "other-index"
    from index_build.build import build_index

    build_index(built.catalog, built.model, other, progress=False, neighbours_k=0)
    db = tmp_path / "writes.sqlite3"
    with TestClient(create_app(_settings(built, db))) as client:
        swapped = client.post("/admin/swap", json={"index_dir": str(other)}, headers=AUTH).json()["index_version"]
    with caplog.at_level(logging.WARNING), TestClient(create_app(_settings(built, db))) as client:
        assert client.get("/healthz").headers[INDEX_HEADER.lower()] == swapped
    assert any("resuming the last swap" in r.getMessage() for r in caplog.records)
    with TestClient(create_app(_settings(built, db, resume_swap=False))) as client:
        assert client.get("/healthz").headers[INDEX_HEADER.lower()] != swapped


# Kind 9: replay is linear (the timing is in `cmar check faults`; here: one snapshot per replay).


def test_replay_builds_one_snapshot(built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from service import live

    db = tmp_path / "writes.sqlite3"
    with TestClient(create_app(_settings(built, db))) as client:
        for i in range(30):
            client.put(f"/artists/w{i}", json={"name": f"W{i}", "tag": _tags(built)[i % 5 : i % 5 + 2]}, headers=AUTH)
        client.delete("/artists/w3", headers=AUTH)
    made = []
    real = live.Overlay.__post_init__

    def counting(self: live.Overlay) -> None:
        made.append(len(self.ids))
        real(self)

    monkeypatch.setattr(live.Overlay, "__post_init__", counting)
    with TestClient(create_app(_settings(built, db))) as client:
        assert client.get("/artists/w29").status_code == 200 and client.get("/artists/w3").status_code == 404
    assert max(made) == 29 and len([m for m in made if m > 0]) == 1, made


# Kind 11: HEAD, and log lines that cannot be forged.


@pytest.mark.parametrize(
    "path", ["/healthz", "/readyz", "/artists/{a}", "/artists/{a}/similar", "/artists/{a}/similar?k=300"]
)
def test_head_answers_like_get_without_a_body(client: TestClient, built: Built, path: str) -> None:
    url = path.format(a=load_index(built.index, verify=False).artist_ids[0])
    get, head = client.get(url), client.head(url)
    assert head.status_code == get.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers[INDEX_HEADER.lower()] and head.headers["x-request-id"]


def test_text_logs_escape_control_characters() -> None:
    record = logging.LogRecord("cmar.access", logging.INFO, "", 0, "%s %s", ("GET", "/artists/x\nforged 200"), None)
    line = SafeTextFormatter().format(record)
    assert "\n" not in line and "\\nforged" in line


def test_cache_is_keyed_on_validated_parameters(client: TestClient, built: Built) -> None:
    artist = load_index(built.index, verify=False).artist_ids[0]
    artifacts = client.app.state.serving.artifacts  # type: ignore[attr-defined]
    for i in range(50):
        assert client.get(f"/artists/{artist}/similar?k=10&junk={'x' * 1000}{i}").status_code == 200
    assert set(artifacts.overlay.cache.bodies) == {(artist, 10)}
    assert artifacts.overlay.cache.held < 10_000
    np.testing.assert_equal(len(artifacts.overlay.cache.bodies), 1)


# The second review's cases.


def test_a_manifest_that_is_a_link_or_a_fifo_is_refused_at_once_without_echoing(
    client: TestClient, built: Built, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"schema_version": "SECRET-VALUE-42", "kind": "index"}')
    linked = tmp_path / "linked"
    shutil.copytree(built.index, linked)
    (linked / "manifest.json").unlink()
    (linked / "manifest.json").symlink_to(secret)
    r = client.post("/admin/swap", json={"index_dir": str(linked)}, headers=AUTH)
    assert r.status_code == 409 and "symbolic link" in r.json()["detail"] and "SECRET" not in r.text
    fifo = tmp_path / "fifo"
    shutil.copytree(built.index, fifo)
    os.mkfifo(fifo / "pipe")
    manifest = json.loads((fifo / "manifest.json").read_text())
    manifest["files"]["pipe"] = {"sha256": "0" * 64, "bytes": 1}
    (fifo / "manifest.json").write_text(json.dumps(manifest))
    r = client.post("/admin/swap", json={"index_dir": str(fifo)}, headers=AUTH)  # must not block
    assert r.status_code == 409 and "not a regular file" in r.json()["detail"]
    garbage = tmp_path / "garbage"
    shutil.copytree(built.index, garbage)
    (garbage / "manifest.json").write_bytes(b"\xff\xfe secret bytes")
    r = client.post("/admin/swap", json={"index_dir": str(garbage)}, headers=AUTH)
    assert r.status_code == 409 and r.json()["detail"].endswith("manifest.json: not valid JSON")


def test_rows_that_break_the_json_parser_or_the_id_rule_are_skipped(
    built: Built, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "writes.sqlite3"
    with TestClient(create_app(_settings(built, db))) as client:
        assert client.put("/artists/fine", json={"name": "F", "tag": _tags(built)[:2]}, headers=AUTH).status_code == 201
    con = sqlite3.connect(db)
    con.execute("INSERT INTO artists VALUES ('deep', 50, ?, 0)", ("[" * 200_000 + "]" * 200_000,))
    con.execute("INSERT INTO artists VALUES ('a/b', 51, ?, 0)", (json.dumps({"name": "x", "tag": _tags(built)[:2]}),))
    con.execute("INSERT INTO artists VALUES ('nan', 52, ?, 0)", ('{"name": "n", "cf": [NaN]}',))
    con.commit()
    con.close()
    with caplog.at_level(logging.WARNING), TestClient(create_app(_settings(built, db))) as client:
        assert client.get("/artists/fine").status_code == 200
        assert client.get("/readyz").json()["skipped_writes"] == 3
        other = tmp_path / "other"
        shutil.copytree(built.index, other)
        assert client.post("/admin/swap", json={"index_dir": str(other)}, headers=AUTH).status_code == 200
    assert any("'deep'" in r.getMessage() and "nested too deeply" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("path", ["/artists/%ED%A0%80", "/artists/%FF", "/artists/%C0%C1/similar"])
def test_paths_that_are_not_utf8_are_400_not_merged_into_one_id(client: TestClient, path: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        r = client.request(method, path, json={"name": "X", "tag": ["a"]}, headers=AUTH)
        assert r.status_code == 400 and "UTF-8" in r.json()["detail"] and r.headers["x-request-id"]


@pytest.mark.parametrize("bad", ["%20", "x%20", "%E2%80%A8x"])
def test_ids_with_white_space_at_the_ends_or_line_breaks_are_refused(client: TestClient, bad: str) -> None:
    r = client.put(f"/artists/{bad}", json={"name": "X", "cf": [0.0]}, headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "artist_id"], r.text


def test_a_swap_whose_folders_are_gone_restarts_on_the_configured_ones(
    built: Built, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = tmp_path / "gone"
    shutil.copytree(built.index, other)
    db = tmp_path / "writes.sqlite3"
    with TestClient(create_app(_settings(built, db))) as client:
        assert client.post("/admin/swap", json={"index_dir": str(other)}, headers=AUTH).status_code == 200
    shutil.rmtree(other)
    with caplog.at_level(logging.WARNING), TestClient(create_app(_settings(built, db))) as client:
        assert client.get("/readyz").status_code == 200
    assert any("do not load" in r.getMessage() and "serving the configured" in r.getMessage() for r in caplog.records)


def test_one_clear_error_per_bad_weight_and_no_coercion(client: TestClient, built: Built) -> None:
    tag = _tags(built)[0]
    r = client.post("/similar", json={"tag": {tag: 1e-9}})
    assert r.status_code == 422 and len(r.json()["detail"]) == 1
    assert r.json()["detail"][0]["loc"] == ["body", "tag", tag] and "0.000001" in r.json()["detail"][0]["msg"]
    for weight in (True, "1"):
        assert client.post("/similar", json={"tag": {tag: weight}}).status_code == 422
    r = client.post("/similar", json={"tag": [tag, "Straße-Unknown"]})
    assert r.json()["unknown_tags"] == ["Straße-Unknown"]  # as the client wrote it


def test_text_log_lines_name_the_request() -> None:
    record = logging.LogRecord("cmar", logging.WARNING, "", 0, "something", None, None)
    record.request_id = "abc-1"
    assert SafeTextFormatter().format(record).endswith("something [request_id=abc-1]")


def test_an_edited_model_manifest_is_refused_by_the_swap(client: TestClient, built: Built, tmp_path: Path) -> None:
    for field, value in (("file", "cf.onnx"), ("input_dim", 0)):
        model = tmp_path / f"model-{field}"
        shutil.copytree(built.model, model)
        manifest = json.loads((model / "manifest.json").read_text())
        manifest["modalities"]["audio"][field] = value  # the version hashes files, not the manifest
        (model / "manifest.json").write_text(json.dumps(manifest))
        r = client.post("/admin/swap", json={"model_dir": str(model), "index_dir": str(built.index)}, headers=AUTH)
        assert r.status_code == 409, r.text
    model = tmp_path / "model-weights"
    shutil.copytree(built.model, model)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["modality_weights"]["audio"] = 7.0  # valid on its own, but not what the index was built with
    (model / "manifest.json").write_text(json.dumps(manifest))
    r = client.post("/admin/swap", json={"model_dir": str(model), "index_dir": str(built.index)}, headers=AUTH)
    assert r.status_code == 409 and "differs from the one this index was built with" in r.json()["detail"]


def test_a_huge_file_of_the_wrong_size_is_refused_without_reading_it(
    client: TestClient, built: Built, tmp_path: Path
) -> None:
    index = tmp_path / "sparse"
    shutil.copytree(built.index, index)
    with open(index / "neighbours.npy", "r+b") as handle:
        handle.truncate(3 * 2**30)  # a sparse 3 GiB file: reading it whole would cost 3 GiB of memory
    r = client.post("/admin/swap", json={"index_dir": str(index)}, headers=AUTH)
    assert r.status_code == 409 and "bytes the manifest records" in r.json()["detail"]
