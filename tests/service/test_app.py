"""Every endpoint, and every bad input answered with a 4xx that names the field."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from catalog.io import read_catalog
from catalog.tables import SetTable, VectorTable
from core.errors import CmarError
from inference.index import load_index, vectors_of
from service.app import create_app
from service.artifacts import INDEX_HEADER, MODEL_HEADER
from service.settings import Settings
from tests.conftest import Built


@pytest.fixture(scope="module")
def client(built: Built) -> Iterator[TestClient]:
    settings = Settings(model_dir=built.model, index_dir=built.index)
    with TestClient(create_app(settings)) as c:
        yield c


def _detail(response) -> dict:  # type: ignore[no-untyped-def]
    return response.json()["detail"][0]


def test_similar_equals_brute_force_and_excludes_the_artist(client: TestClient, built: Built) -> None:
    loaded = load_index(built.index)
    vectors = vectors_of(loaded, np.arange(len(loaded)))
    artist = loaded.artist_ids[5]
    r = client.get(f"/artists/{artist}/similar", params={"k": 15})
    assert r.status_code == 200
    body = r.json()
    assert body["artist_id"] == artist and body["k"] == 15 and len(body["results"]) == 15
    ids = [x["artist_id"] for x in body["results"]]
    assert artist not in ids
    cosine = vectors @ vectors[5]
    # ranking: cosine minus each candidate's hub penalty plus the modality balance's offset for the artist's subset
    adjusted = cosine - loaded.penalties[loaded.slots[5]]
    assert not np.allclose(loaded.penalties[loaded.slots[5]], loaded.penalty)  # the balance takes part
    adjusted[5] = -np.inf
    rows = [loaded.row_of[i] for i in ids]
    np.testing.assert_allclose(adjusted[rows], np.sort(adjusted)[::-1][:15], atol=1e-5)
    np.testing.assert_allclose([x["score"] for x in body["results"]], cosine[rows], atol=1e-5)  # scores are cosines
    first = body["results"][0]
    row = loaded.row_of[first["artist_id"]]
    assert first["name"] == loaded.names[row] and first["modalities"] == loaded.modalities[row]
    assert r.headers[MODEL_HEADER] == loaded.manifest.model.model_version
    assert r.headers[INDEX_HEADER] == loaded.manifest.index_version


def test_default_k_and_k_larger_than_the_index(client: TestClient, built: Built) -> None:
    artist = load_index(built.index).artist_ids[0]
    assert len(client.get(f"/artists/{artist}/similar").json()["results"]) == 10
    n = client.get("/readyz").json()["n_artists"]
    assert len(client.get(f"/artists/{artist}/similar", params={"k": 1000}).json()["results"]) == min(1000, n - 1)


def test_cold_start_with_an_artists_own_inputs_finds_that_artist(client: TestClient, built: Built) -> None:
    catalog = read_catalog(built.catalog)
    row = int(np.flatnonzero(catalog.present().all(axis=0))[0])
    audio, cf, tag = (catalog.modalities[n] for n in ("audio", "cf", "tag"))
    assert isinstance(audio, VectorTable) and isinstance(cf, VectorTable) and isinstance(tag, SetTable)
    ids, mask = tag.top_items([row], 16)
    names = [tag.vocab[i] for i in ids[0][mask[0]]]
    weights = tag.weights[tag.indptr[row] : tag.indptr[row] + len(names)].tolist()
    body = {
        "audio": audio.values[row].tolist(),
        "cf": cf.values[row].tolist(),
        "tag": {**dict(zip(names, weights, strict=True)), "not-a-tag": 1.0},
        "k": 3,
    }
    r = client.post("/similar", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["modalities"] == ["audio", "cf", "tag"] and out["unknown_tags"] == ["not-a-tag"]
    assert out["results"][0]["artist_id"] == catalog.artist_ids[row]
    assert out["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    # Names without weights, or tag vectors, weigh every tag the same: close to, not exactly, the artist.
    body["tag"] = names
    by_names = client.post("/similar", json=body).json()
    body["tag"] = tag.vocab_vectors[ids[0][mask[0]]].tolist()
    by_vectors = client.post("/similar", json=body).json()
    # The same tags (names are ordered by vocabulary row, vectors as given): the same answer up to float rounding.
    assert [r["artist_id"] for r in by_vectors["results"]] == [r["artist_id"] for r in by_names["results"]]
    scores = [r["score"] for r in by_names["results"]]
    assert [r["score"] for r in by_vectors["results"]] == pytest.approx(scores, abs=1e-6)
    assert by_names["results"][0]["artist_id"] == catalog.artist_ids[row]


def test_cold_start_with_one_modality(client: TestClient, built: Built) -> None:
    catalog = read_catalog(built.catalog)
    audio = catalog.modalities["audio"]
    assert isinstance(audio, VectorTable)
    # An artist known by audio alone: the query is completed exactly as the index completed it.
    row = int(np.flatnonzero(audio.present & (catalog.present().sum(axis=0) == 1))[0])
    r = client.post("/similar", json={"audio": audio.values[row].tolist()})
    assert r.status_code == 200
    assert r.json()["modalities"] == ["audio"] and len(r.json()["results"]) == 10
    assert r.json()["results"][0]["artist_id"] == catalog.artist_ids[row]
    assert r.json()["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_artist_and_health(client: TestClient, built: Built) -> None:
    loaded = load_index(built.index)
    r = client.get(f"/artists/{loaded.artist_ids[3]}")
    assert loaded.popularity is not None
    assert r.json() == {
        "artist_id": loaded.artist_ids[3],
        "name": loaded.names[3],
        "modalities": loaded.modalities[3],
        "popularity": pytest.approx(float(loaded.popularity[3])),
    }
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["n_artists"] == len(loaded)
    assert ready["index_version"] == loaded.manifest.index_version
    assert "/similar" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200


def test_unknown_artist_is_404(client: TestClient) -> None:
    for path in ("/artists/nobody", "/artists/nobody/similar"):
        r = client.get(path)
        assert r.status_code == 404 and "nobody" in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [
        ({"video": [1.0]}, ["body"], "unknown modality 'video'; expected any of audio, cf, tag"),
        ({"audio": [1.0, 2.0]}, ["body", "audio"], "expected a vector of 64 numbers, got 2"),
        ({"cf": [1e39] * 48}, ["body", "cf"], "finite 32-bit floats"),
        ({}, ["body"], "give at least one modality"),
        ({"audio": None, "tag": None}, ["body"], "give at least one modality"),
        (None, ["body"], "a JSON body is required"),
        (
            {"tag": ["no-such-tag", "nor-this"]},
            ["body", "tag"],
            "none of the 2 tag name(s) is in the model's vocabulary",
        ),
        ({"tag": []}, ["body", "tag"], "at least 1 item"),
        ({"tag": {"style00-tag0": 0}}, ["body", "tag"], "greater than or equal to 0.000001"),
        ({"audio": [3e38] * 64}, ["body"], "far outside the range of its training data"),
        ({"audio": [-3e38] * 64, "cf": [1e30] * 48}, ["body"], "far outside the range of its training data"),
        ({"tag": [[0.5] * 3]}, ["body", "tag", 0], "expected a vector of 32 numbers, got 3"),
        ({"tag": ["style00-tag0"], "k": 0}, ["body", "k"], "greater than or equal to 1"),
        ({"tag": ["style00-tag0"], "k": 1001}, ["body", "k"], "less than or equal to 1000"),
        ({"audio": "loud"}, ["body", "audio"], "valid array"),
    ],
)
def test_bad_cold_start_queries_are_422_naming_the_field(
    client: TestClient, body: object, loc: list, message: str
) -> None:
    r = client.post("/similar", json=body) if body is not None else client.post("/similar")
    assert r.status_code == 422
    # A value that fits none of a union's forms gets one entry per form; one of them says what is wrong.
    details = r.json()["detail"]
    assert any(d["loc"][: len(loc)] == loc and message in d["msg"] for d in details), details


def test_huge_and_infinite_tag_weights(client: TestClient) -> None:
    r = client.post("/similar", json={"tag": {"style00-tag0": 1e308, "style00-tag1": 1.0}})
    assert r.status_code == 200 and len(r.json()["results"]) == 10
    r = client.post(
        "/similar", content=b'{"tag": {"style00-tag0": Infinity}}', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and any("finite" in d["msg"] for d in r.json()["detail"])


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_422(client: TestClient, literal: bytes) -> None:
    r = client.post("/similar", content=b'{"audio": [' + literal + b"]}", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert _detail(r)["loc"] == ["body", "audio", 0] and "finite number" in _detail(r)["msg"]


def test_malformed_json_and_bad_k_on_get(client: TestClient, built: Built) -> None:
    r = client.post("/similar", content=b'{"audio": [1,', headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in _detail(r)["msg"]
    artist = load_index(built.index).artist_ids[0]
    for k, message in (("0", "greater than or equal to 1"), ("1001", "less than or equal to 1000"), ("ten", "integer")):
        r = client.get(f"/artists/{artist}/similar", params={"k": k})
        assert r.status_code == 422 and _detail(r)["loc"] == ["query", "k"] and message in _detail(r)["msg"]


def test_refuses_to_start_when_the_index_belongs_to_another_model(built: Built, tmp_path: Path) -> None:
    import shutil

    from index_build.build import build_index
    from model_export.config import TrainConfig
    from model_export.export import export
    from model_export.train import train
    from pipeline.workdir import Workdir

    work = Workdir(tmp_path)
    train(built.catalog, work.checkpoint, TrainConfig(epochs=1, seed=99), progress=False)
    export(work.checkpoint, work.model)
    shutil.copytree(built.index, work.index)
    app = create_app(Settings(model_dir=work.model, index_dir=work.index))
    with pytest.raises(CmarError, match="index was built with model"), TestClient(app):
        pass
    build_index(built.catalog, work.model, work.index, progress=False)
    with TestClient(create_app(Settings(model_dir=work.model, index_dir=work.index))) as c:
        assert c.get("/readyz").status_code == 200
