"""GET /map: a map folder laid over the served artists, paged or boxed, unmapped artists placed by neighbours."""

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from core.artifacts import MAP_FILE
from core.files import sha256_file
from evaluation.maps import make_map
from evaluation.nn_similarity import load_space
from inference.index import LoadedIndex, load_index, vectors_of
from service.app import create_app
from service.settings import Settings
from tests.conftest import Built
from tests.service.test_writes import AUTH, KEY, _body_of

DROPPED = 50  # the first artists of the index, left out of the map


@pytest.fixture(scope="module")
def map_dir(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("map") / "pca"
    make_map(load_space(str(built.index)), "pca", 0, out)
    table = pq.read_table(out / MAP_FILE)
    pq.write_table(table.slice(DROPPED), out / MAP_FILE)  # as if these were indexed after the map
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["sha256"][MAP_FILE] = sha256_file(out / MAP_FILE)
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


@pytest.fixture(scope="module")
def client(built: Built, map_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("mapdb") / "writes.sqlite3"
    settings = Settings(model_dir=built.model, index_dir=built.index, writes_db=db, api_key=KEY, map_dir=map_dir)  # type: ignore[call-arg]
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def loaded(built: Built) -> LoadedIndex:
    return load_index(built.index, verify=False)


def _all_points(client: TestClient, **params: object) -> list[dict]:
    points, offset = [], 0
    while True:
        page = client.get("/map", params={**params, "offset": offset, "limit": 128})
        assert page.status_code == 200, page.text
        points += page.json()["points"]
        offset += 128
        if offset >= page.json()["total"]:
            return points


def test_every_served_artist_is_on_the_map(client: TestClient, loaded: LoadedIndex, map_dir: Path) -> None:
    points = _all_points(client)
    assert [p["artist_id"] for p in points] == loaded.artist_ids
    table = pq.read_table(map_dir / MAP_FILE).to_pydict()
    held = dict(zip(table["id"], zip(table["x"], table["y"], strict=True), strict=True))
    vectors = vectors_of(loaded, np.arange(len(loaded)))
    mapped = np.arange(DROPPED, len(loaded))
    for row, point in enumerate(points):
        if row >= DROPPED:
            assert point["placed_by"] == "map"
            assert (point["x"], point["y"]) == pytest.approx(held[point["artist_id"]])
        else:  # the median position of its 5 nearest mapped artists
            assert point["placed_by"] == "neighbours"
            nearest = mapped[np.argsort(-(vectors[mapped] @ vectors[row]))[:5]]
            xy = np.median(np.array([held[loaded.artist_ids[r]] for r in nearest]), axis=0)
            assert (point["x"], point["y"]) == pytest.approx(tuple(xy), abs=1e-4)
    about = client.get("/map", params={"limit": 1}).json()
    assert about["method"] == "pca" and about["n_items"] == len(loaded) - DROPPED and about["unplaced"] == []
    assert about["served_on_map"] == len(loaded) - DROPPED and about["placed_by_neighbours"] == DROPPED
    assert about["map"] == "pca" and "/" not in str(about["source"])  # names, not the server's paths
    assert about["drawn_for_served_index"] is True and about["source_index_version"] == loaded.version
    assert set(about["preservation"]) == {"5", "10", "100", "200"}


def test_a_box_keeps_exactly_the_points_inside(client: TestClient) -> None:
    points = _all_points(client)
    xs, ys = np.array([p["x"] for p in points]), np.array([p["y"] for p in points])
    box = (float(np.median(xs)), float(np.min(ys)), float(np.max(xs)), float(np.median(ys)))
    inside = _all_points(client, box=",".join(str(v) for v in box))
    expected = [p["artist_id"] for p in points if box[0] <= p["x"] <= box[2] and box[1] <= p["y"] <= box[3]]
    assert [p["artist_id"] for p in inside] == expected and 0 < len(expected) < len(points)


def test_written_artists_are_placed_and_deleted_ones_leave(
    client: TestClient, loaded: LoadedIndex, built: Built
) -> None:
    twin_of = loaded.artist_ids[300]
    assert client.put("/artists/map-new", json=_body_of(built, twin_of, "New"), headers=AUTH).status_code == 201
    assert client.delete(f"/artists/{loaded.artist_ids[301]}", headers=AUTH).status_code == 200
    points = {p["artist_id"]: p for p in _all_points(client)}
    assert loaded.artist_ids[301] not in points
    new, twin = points["map-new"], points[twin_of]
    assert new["placed_by"] == "neighbours" and new["name"] == "New"
    spread = np.ptp([p["x"] for p in points.values()])
    assert abs(new["x"] - twin["x"]) < 0.1 * spread  # its twin's neighbourhood
    client.delete("/artists/map-new", headers=AUTH)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"box": "1,2,3"}, "box"),
        ({"box": "3,0,1,1"}, "box"),
        ({"box": "0,0,nan,1"}, "box"),
        ({"limit": 0}, "limit"),
        ({"offset": 2**64}, "offset"),  # beyond any index: a 422, not a number too large to write back
    ],
)
def test_bad_map_parameters_are_422s(client: TestClient, params: dict, field: str) -> None:
    r = client.get("/map", params=params)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", field]


def test_no_map_is_a_404_and_a_bad_map_folder_refuses_to_start(built: Built, tmp_path: Path) -> None:
    with TestClient(create_app(Settings(model_dir=built.model, index_dir=built.index))) as c:  # type: ignore[call-arg]
        r = c.get("/map")
        assert r.status_code == 404 and "CMAR_MAP_DIR" in r.json()["detail"]
    (tmp_path / "notamap").mkdir()
    pq.write_table(pa.table({"id": ["a"]}), tmp_path / "notamap" / MAP_FILE)
    from core.errors import CmarError
    from service.settings import load_map

    with pytest.raises(CmarError, match="not a map folder"):
        load_map(Settings(model_dir=built.model, index_dir=built.index, map_dir=tmp_path / "notamap"))  # type: ignore[call-arg]


def test_a_map_of_another_index_lists_every_served_artist_as_unplaced_page_by_page(
    built: Built, tmp_path: Path
) -> None:
    out = tmp_path / "other"
    out.mkdir()
    pq.write_table(pa.table({"id": ["x1", "x2", "x3"], "x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 0.5]}), out / MAP_FILE)
    (out / "manifest.json").write_text(
        '{"kind": "map", "method": "pca", "seed": 0, "source": "/a/b/elsewhere", "source_index_version": "i-other"}'
    )
    settings = Settings(model_dir=built.model, index_dir=built.index, map_dir=out, writes_db=tmp_path / "w.db")  # type: ignore[call-arg]
    with TestClient(create_app(settings)) as c:
        first = c.get("/map", params={"limit": 10}).json()
        served = first["served"]
        assert first["total"] == 0 and first["unplaced_total"] == served and len(first["unplaced"]) == 10
        pages = [c.get("/map", params={"limit": 100, "offset": o}).json()["unplaced"] for o in range(0, served, 100)]
        assert len({a for p in pages for a in p}) == served  # every one reachable
        assert c.get("/map", params={"box": "0,0,1,1"}).json()["unplaced"] == []
        assert first["source"] == "elsewhere" and first["drawn_for_served_index"] is False


def test_a_changed_map_file_refuses_to_load(built: Built, map_dir: Path, tmp_path: Path) -> None:
    import shutil

    from core.errors import CmarError
    from service.settings import load_map

    copy = tmp_path / "copy"
    shutil.copytree(map_dir, copy)
    (copy / "manifest.json").write_text(
        (copy / "manifest.json")
        .read_text()
        .replace('"sha256": {', '"sha256": {"unused": "x", ')
        .replace('"map.parquet": "', '"map.parquet": "0')
    )
    with pytest.raises(CmarError, match="sha256"):
        load_map(Settings(model_dir=built.model, index_dir=built.index, map_dir=copy))  # type: ignore[call-arg]
