"""POST /tracks/clusters: tracks of one name split into their artists; bad input is a 4xx naming the field."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.schemas import MAX_TRACKS
from service.settings import Settings
from tests.conftest import Built
from tests.tracks_data import synthetic_tracks


@pytest.fixture(scope="module")
def client(built: Built, track_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("db") / "w.sqlite3"
    settings = Settings(model_dir=built.model, index_dir=built.index, track_model_dir=track_model, writes_db=db)
    with TestClient(create_app(settings)) as c:
        yield c


def _tracks(artists: list[int]) -> list[dict]:
    audio, labels, _ = synthetic_tracks(n_artists=60, tracks=6, seed=0)
    rows = np.flatnonzero(np.isin(labels, artists))
    return [{"id": f"t{r}", "audio": audio[r].tolist()} for r in rows]


def test_two_artists_under_one_name_come_back_as_two_clusters(client: TestClient) -> None:
    r = client.post("/tracks/clusters", json={"tracks": _tracks([3, 7])})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["n_clusters"] == 2 and 0 < body["confidence"] < 1
    assert [c["cluster"] for c in body["clusters"]] == [0, 1]
    assert sorted(sorted(c["track_ids"]) for c in body["clusters"]) == [
        sorted(t["id"] for t in _tracks([3])),
        sorted(t["id"] for t in _tracks([7])),
    ]
    assert body["track_model"].startswith("m-")


def test_one_artist_stays_one_cluster_and_a_threshold_can_be_given(client: TestClient) -> None:
    one = client.post("/tracks/clusters", json={"tracks": _tracks([5])}).json()
    assert one["n_clusters"] == 1 and one["confidence"] == 0
    tiny = client.post("/tracks/clusters", json={"tracks": _tracks([5]), "threshold": 1e-9}).json()
    assert tiny["n_clusters"] == 6 and tiny["threshold"] == 1e-9  # every track its own cluster
    single = client.post("/tracks/clusters", json={"tracks": _tracks([5])[:1]}).json()
    assert single["clusters"] == [{"cluster": 0, "track_ids": [_tracks([5])[0]["id"]]}]


@pytest.mark.parametrize(
    ("body", "loc", "words"),
    [
        ({"tracks": [{"id": "a", "audio": [1.0] * 5}]}, ["body", "tracks", 0, "audio"], "expected 12 numbers"),
        ({"tracks": []}, ["body", "tracks"], "at least 1"),
        (
            {"tracks": [{"id": "a", "audio": [1.0] * 12}, {"id": "a", "audio": [2.0] * 12}]},
            ["body", "tracks", 1, "id"],
            "given twice",
        ),
        ({"tracks": [{"id": "a", "audio": [1e308] * 12}]}, ["body", "tracks", 0, "audio"], "too large"),
        (
            {"tracks": [{"id": "a", "audio": [1.0] * 12}, {"id": "b", "audio": [3e38] * 12}]},
            ["body", "tracks", 1, "audio"],
            "too large",
        ),
        ({"tracks": [{"id": "a", "audio": [1.0] * 12}], "threshold": "1.5"}, ["body", "threshold"], "valid number"),
        ({"tracks": [{"id": "a", "audio": [1.0] * 12}], "threshold": True}, ["body", "threshold"], "valid number"),
        ({"tracks": [{"id": "a", "audio": ["x"] * 12}]}, ["body", "tracks", 0, "audio", 0], "number"),
        ({"tracks": [{"id": "", "audio": [1.0] * 12}]}, ["body", "tracks", 0, "id"], "at least 1"),
        ({"tracks": [{"id": "a", "audio": [1.0] * 12}], "threshold": 0}, ["body", "threshold"], "greater than 0"),
        ({"tracks": [{"id": "a", "audio": [1.0] * 12, "genre": "x"}]}, ["body", "tracks", 0, "genre"], "xtra"),
        ({"songs": []}, ["body", "tracks"], "required"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(client: TestClient, body: dict, loc: list, words: str) -> None:
    r = client.post("/tracks/clusters", json=body)
    assert r.status_code == 422, r.text
    errors = r.json()["detail"]
    assert any(e["loc"] == loc and words.lower() in e["msg"].lower() for e in errors), errors


def test_large_but_finite_audio_still_gives_unit_embeddings(client: TestClient) -> None:
    tracks = _tracks([3, 7])
    tracks[0]["audio"] = [1e25] * 12  # the norm of its embedding would overflow float32 unless scaled first
    r = client.post("/tracks/clusters", json={"tracks": tracks})
    assert r.status_code == 200 and r.json()["n_clusters"] >= 2


def test_too_many_tracks_and_bad_json_are_4xx(client: TestClient) -> None:
    many = [{"id": str(i), "audio": [0.0]} for i in range(MAX_TRACKS + 1)]
    r = client.post("/tracks/clusters", json={"tracks": many})
    assert r.status_code == 422 and "at most 2000" in r.text
    r = client.post("/tracks/clusters", content=b'{"tracks": [', headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = client.post("/tracks/clusters", content=b"\xff\xfe", headers={"content-type": "application/json"})
    assert r.status_code == 400


def test_without_a_track_model_the_route_says_how_to_get_one(built: Built, tmp_path: Path) -> None:
    settings = Settings(model_dir=built.model, index_dir=built.index, writes_db=tmp_path / "w.sqlite3")
    with TestClient(create_app(settings)) as c:
        r = c.post("/tracks/clusters", json={"tracks": [{"id": "a", "audio": [1.0]}]})
    assert r.status_code == 404 and "CMAR_TRACK_MODEL_DIR" in r.json()["detail"]
