"""The GETs answered before FastAPI's routing give exactly what the documented route gives."""

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from inference.index import load_index
from service.app import create_app
from service.artifacts import INDEX_HEADER, MODEL_HEADER, Artifacts
from service.middleware import fast_answer
from service.search import search
from service.settings import Settings
from tests.conftest import Built


@pytest.fixture(scope="module")
def app_and_client(built: Built) -> Iterator[tuple[Artifacts, TestClient]]:
    settings = Settings(model_dir=built.model, index_dir=built.index)
    artifacts = Artifacts.load(settings)
    with TestClient(create_app(settings, artifacts)) as client:
        yield artifacts, client


def _scope(app: object, path: str, query: bytes) -> dict[str, object]:
    return {"type": "http", "method": "GET", "path": path, "query_string": query, "app": app}


def test_fast_answers_equal_a_search_and_carry_the_versions(app_and_client: tuple[Artifacts, TestClient]) -> None:
    artifacts, client = app_and_client
    artist = artifacts.index.artist_ids[3]
    for k in (1, 10, 200):
        r = client.get(f"/artists/{artist}/similar", params={"k": k})
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert r.headers[MODEL_HEADER] == artifacts.model.version and r.headers[INDEX_HEADER] == artifacts.index.version
        body = r.json()
        assert body["artist_id"] == artist and body["k"] == k and len(body["results"]) == k
        vector = artifacts.vector_of(artist)
        assert vector is not None
        hits = search(artifacts, vector, k, exclude=artist)  # always a live search
        assert [x["artist_id"] for x in body["results"]][:5] == [h.artist_id for h in hits][:5]
        np.testing.assert_allclose([x["score"] for x in body["results"]], [h.score for h in hits], atol=1e-5)
        assert set(body["results"][0]) == {"artist_id", "name", "score", "modalities"}
    assert client.get("/healthz").json() == {"status": "ok"}


def test_only_plain_requests_take_the_fast_path(app_and_client: tuple[Artifacts, TestClient]) -> None:
    artifacts, client = app_and_client
    app = client.app
    artist = artifacts.index.artist_ids[0]
    path = f"/artists/{artist}/similar"
    assert fast_answer(_scope(app, path, b"k=10")) is not None
    assert fast_answer(_scope(app, path, b"")) is not None  # k defaults to 10
    for query in (b"k=010", b"k=10&x=1", b"k=abc", b"k=0", b"k=1001", b"k=%2010"):
        assert fast_answer(_scope(app, path, query)) is None, query
    assert fast_answer(_scope(app, "/artists/nobody/similar", b"k=10")) is None
    assert fast_answer(_scope(app, path, b"k=1000")) is None  # longer than the precomputed lists: a search
    # ... and FastAPI answers those the documented way.
    assert client.get(f"{path}?k=010").json()["k"] == 10
    assert client.get(f"{path}?k=abc").status_code == 422
    assert client.get("/artists/nobody/similar").status_code == 404
    assert len(client.get(f"{path}?k=1000").json()["results"]) == min(1000, len(artifacts.index) - 1)


def test_repeated_requests_get_identical_bytes(app_and_client: tuple[Artifacts, TestClient]) -> None:
    artifacts, client = app_and_client
    artist = artifacts.index.artist_ids[7]
    first = client.get(f"/artists/{artist}/similar?k=25").content
    assert client.get(f"/artists/{artist}/similar?k=25").content == first
    assert (artist, 25) in artifacts.overlay.cache  # keyed by the validated parameters
    shorter = client.get(f"/artists/{artist}/similar?k=5").json()["results"]
    assert shorter == client.get(f"/artists/{artist}/similar?k=25").json()["results"][:5]


def test_the_small_batch_search_equals_faiss(built: Built) -> None:
    loaded = load_index(built.index)
    assert loaded.matrix is not None
    queries = loaded.matrix[:3, : loaded.manifest.embedding_dim]
    small = loaded.search(queries, 30)
    loaded.matrix = None
    np.testing.assert_allclose(small[0], loaded.search(queries, 30)[0], atol=1e-5)
