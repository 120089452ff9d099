"""Filters, paging, the dissimilar order and explanations on both similar routes.

Each filtered answer is compared with filtering a full ranking computed here with numpy.
"""

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from catalog.io import read_catalog
from catalog.tables import SetTable
from inference.index import LoadedIndex, load_index, vectors_of
from service.app import create_app
from service.settings import Settings
from tests.conftest import Built
from tests.service.test_writes import AUTH, KEY, _body_of


@pytest.fixture(scope="module")
def client(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    db = tmp_path_factory.mktemp("options") / "writes.sqlite3"
    settings = Settings(model_dir=built.model, index_dir=built.index, writes_db=db, api_key=KEY)  # type: ignore[call-arg]
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def loaded(built: Built) -> LoadedIndex:
    return load_index(built.index, verify=False)


def _full_ranking(loaded: LoadedIndex, row: int, far: bool = False) -> list[str]:
    """Every other indexed artist, most similar first (far: least similar first): cosine minus hub
    penalty plus the modality balance's offset for the artist's subset, ties by row."""
    vectors = vectors_of(loaded, np.arange(len(loaded)))
    rank = vectors @ vectors[row] - loaded.penalties[loaded.slots[row]]
    order = [int(r) for r in np.argsort(rank if far else -rank, kind="stable") if r != row]
    return [loaded.artist_ids[r] for r in order]


def _ids(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    return [x["artist_id"] for x in response.json()["results"]]


CASES = [
    {"modalities": "audio"},
    {"modalities": "cf,tag"},
    {"min_popularity": 300.0},
    {"max_popularity": 150.0},
    {"min_popularity": 100.0, "max_popularity": 2000.0},
    {"offset": 7},
    {"order": "dissimilar"},
    {"order": "dissimilar", "offset": 3, "modalities": "tag"},
]


@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_each_filter_equals_filtering_the_full_ranking(client: TestClient, loaded: LoadedIndex, case: dict) -> None:
    row = 5
    artist = loaded.artist_ids[row]
    ranking = _full_ranking(loaded, row, far=case.get("order") == "dissimilar")
    popularity = loaded.popularity
    assert popularity is not None
    wanted = set(str(case.get("modalities", "")).split(",")) - {""}

    def passes(artist_id: str) -> bool:
        r = loaded.row_of[artist_id]
        p = float(popularity[r])
        return (
            wanted <= set(loaded.modalities[r])
            and p >= case.get("min_popularity", -np.inf)
            and p <= case.get("max_popularity", np.inf)
        )

    kept = [a for a in ranking if passes(a)]
    offset = int(case.get("offset", 0))
    response = client.get(f"/artists/{artist}/similar", params={**case, "k": 12})
    assert _ids(response) == kept[offset : offset + 12]
    body = response.json()
    assert body["total"] == len(kept) and body["offset"] == offset and body["k"] == 12


def test_exclude_is_repeated_and_the_first_page_is_the_plain_answer(client: TestClient, loaded: LoadedIndex) -> None:
    artist = loaded.artist_ids[9]
    plain = _ids(client.get(f"/artists/{artist}/similar", params={"k": 10}))
    assert _ids(client.get(f"/artists/{artist}/similar?k=10&offset=0&modalities=")) == plain
    dropped = plain[:3]
    query = "&".join(f"exclude={a}" for a in dropped)
    assert _ids(client.get(f"/artists/{artist}/similar?k=7&{query}")) == plain[3:10]
    second = _ids(client.get(f"/artists/{artist}/similar", params={"k": 5, "offset": 5}))
    assert second == plain[5:10]


def test_cold_start_filters_equal_filtering_its_plain_ranking(client: TestClient, loaded: LoadedIndex) -> None:
    catalog = read_catalog(Path(loaded.manifest.build.catalog))
    tag = catalog.modalities["tag"]
    assert isinstance(tag, SetTable)
    names = [tag.vocab[i] for i in tag.items[tag.indptr[4] : tag.indptr[4] + 3]]
    query = {"tag": names}
    plain = client.post("/similar", json={**query, "k": 200}).json()["results"]
    popularity = loaded.popularity
    assert popularity is not None
    ids = [x["artist_id"] for x in plain]
    with_audio = [a for a in ids if "audio" in loaded.modalities[loaded.row_of[a]]]
    assert _ids(client.post("/similar", json={**query, "k": 10, "modalities": ["audio"]})) == with_audio[:10]
    popular = [a for a in ids if popularity[loaded.row_of[a]] >= 200]
    assert _ids(client.post("/similar", json={**query, "k": 10, "min_popularity": 200})) == popular[:10]
    assert _ids(client.post("/similar", json={**query, "k": 10, "offset": 20})) == ids[20:30]
    assert _ids(client.post("/similar", json={**query, "k": 10, "exclude": ids[:2]})) == ids[2:12]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"modalities": "lyrics"}, "modalities"),
        ({"offset": -1}, "offset"),
        ({"offset": 10**6}, "offset"),
        ({"offset": "two"}, "offset"),
        ({"order": "random"}, "order"),
        ({"min_popularity": "nan"}, "min_popularity"),
        ({"min_popularity": -3}, "min_popularity"),
        ({"min_popularity": 10, "max_popularity": 2}, "max_popularity"),
        ({"explain": "maybe"}, "explain"),
    ],
)
def test_bad_options_are_422s_naming_the_field(
    client: TestClient, loaded: LoadedIndex, params: dict, field: str
) -> None:
    r = client.get(f"/artists/{loaded.artist_ids[0]}/similar", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["query", field]
    body = {"tag": ["rock"], **params}
    if field == "modalities":
        body["modalities"] = [params["modalities"]]
    r = client.post("/similar", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", field]


def test_explanations_add_up_and_leave_the_ranking_alone(client: TestClient, loaded: LoadedIndex, built: Built) -> None:
    full = [r for r in range(len(loaded)) if len(loaded.modalities[r]) == 3]
    artist = loaded.artist_ids[full[0]]
    plain = client.get(f"/artists/{artist}/similar", params={"k": 20}).json()["results"]
    explained = client.get(f"/artists/{artist}/similar", params={"k": 20, "explain": "true"}).json()["results"]
    assert [x["artist_id"] for x in explained] == [x["artist_id"] for x in plain]
    catalog = read_catalog(built.catalog)
    tag = catalog.modalities["tag"]
    assert isinstance(tag, SetTable)

    def tags_of(artist_id: str) -> set[str]:
        row = int(np.flatnonzero(catalog.artist_ids == artist_id)[0])
        return {tag.vocab[i] for i in tag.items[tag.indptr[row] : tag.indptr[row + 1]]}

    completed = 0
    for result in explained:
        why = result["explanation"]
        pairs = why["pairs"]
        best = max(pairs, key=lambda p: p["contribution"])
        assert why["strongest"] == {
            "query_modality": best["query_modality"],
            "result_modality": best["result_modality"],
        }
        for shared in why["shared_tags"]:
            assert shared["tag"] in tags_of(artist) & tags_of(result["artist_id"])
        # the shares add up to the served score, predicted modalities of a completed artist included
        assert sum(p["contribution"] for p in pairs) == pytest.approx(result["score"], abs=0.01)
        for p in pairs:
            predicted = p["result_modality"] not in result["modalities"]
            assert ("result" in p.get("completed", [])) == predicted
            completed += predicted
    assert completed > 0  # audio-only artists among these results, completed by default


def test_cold_start_and_written_artists_are_explained(client: TestClient, loaded: LoadedIndex, built: Built) -> None:
    target = loaded.artist_ids[11]
    body = _body_of(built, target, "Twin")
    assert client.put("/artists/twin-1", json=body, headers=AUTH).status_code in (200, 201)
    r = client.get(f"/artists/{target}/similar", params={"k": 3, "explain": "true"})
    first = _ids(r)[0]
    assert first == "twin-1"
    why = r.json()["results"][0]["explanation"]
    own = [p for p in why["pairs"] if p["query_modality"] == p["result_modality"]]
    assert own and all(p["cosine"] == pytest.approx(1.0, abs=5e-3) for p in own)  # its twin: same embeddings
    query = {k: v for k, v in body.items() if k != "name"}
    r = client.post("/similar", json={**query, "k": 3, "explain": True})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert {results[0]["artist_id"], results[1]["artist_id"]} == {target, "twin-1"}
    assert all(x["explanation"]["pairs"] for x in results)
    # popularity bounds leave out artists whose popularity is unknown: the written twin
    bounded = _ids(client.get(f"/artists/{target}/similar", params={"k": 3, "min_popularity": 0}))
    assert "twin-1" not in bounded
    assert client.delete("/artists/twin-1", headers=AUTH).status_code == 200


def test_a_batch_of_artists_answers_as_each_get_does(client: TestClient, loaded: LoadedIndex) -> None:
    a, b = loaded.artist_ids[3], loaded.artist_ids[40]
    r = client.post("/artists/similar", json={"artist_ids": [a, "no-such-artist", b, a], "k": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["missing"] == ["no-such-artist"] and [x["artist_id"] for x in body["answers"]] == [a, b]
    for answer in body["answers"]:
        assert answer == client.get(f"/artists/{answer['artist_id']}/similar", params={"k": 4}).json()
    options = {"k": 4, "offset": 2, "modalities": ["tag"], "explain": True}
    r = client.post("/artists/similar", json={"artist_ids": [b], **options})
    alone = client.get(f"/artists/{b}/similar", params={**options, "modalities": "tag"}).json()
    assert r.json()["answers"] == [alone]
    too_many = client.post("/artists/similar", json={"artist_ids": [a] * 101})
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["body", "artist_ids"]


def test_a_batch_of_cold_starts_answers_as_each_post_does(client: TestClient) -> None:
    tags = [t["tag"] for t in client.get("/tags", params={"limit": 4}).json()["results"]]
    queries = [{"tag": tags[:1], "k": 3}, {"tag": tags, "k": 5, "order": "dissimilar"}, {"tag": tags[1:3], "k": 2}]
    r = client.post("/similar/batch", json={"queries": queries})
    assert r.status_code == 200, r.text
    assert r.json()["answers"] == [client.post("/similar", json=q).json() for q in queries]
    bad = client.post("/similar/batch", json={"queries": [queries[0], {"tag": ["no-such-tag-anywhere"]}]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "queries", 1, "tag"]
    bad = client.post("/similar/batch", json={"queries": [queries[0], {"tag": tags, "offset": -2}]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "queries", 1, "offset"]


def test_an_option_that_filters_nothing_changes_nothing(client: TestClient, loaded: LoadedIndex) -> None:
    """One arithmetic and one prior pool for every path: precomputed lists, searches, full rankings."""
    tags = [t["tag"] for t in client.get("/tags", params={"limit": 30}).json()["results"]]
    for artist in loaded.artist_ids[:60:3]:
        for k in (200, 260):  # a precomputed list, and a search
            plain = client.get(f"/artists/{artist}/similar", params={"k": k}).json()["results"]
            noop = client.get(f"/artists/{artist}/similar", params={"k": k, "exclude": "no-such-id"}).json()
            assert noop["results"] == plain, (artist, k)
        tail = client.get(f"/artists/{artist}/similar", params={"k": 1, "offset": 135}).json()["results"]
        assert tail == client.get(f"/artists/{artist}/similar", params={"k": 136}).json()["results"][135:]
    for tag in tags[::3]:
        plain = client.post("/similar", json={"tag": [tag], "k": 40}).json()["results"]
        noop = client.post("/similar", json={"tag": [tag], "k": 40, "exclude": ["no-such-id"]}).json()["results"]
        assert noop == plain, tag
        page = client.post("/similar", json={"tag": [tag], "k": 20, "offset": 20}).json()["results"]
        assert page == plain[20:], tag


def test_popularity_bounds_compare_the_popularity_shown(client: TestClient, loaded: LoadedIndex) -> None:
    artist, other = loaded.artist_ids[0], loaded.artist_ids[7]
    shown = client.get(f"/artists/{other}").json()["popularity"]  # float32's value, as a float64
    above = float(np.nextafter(shown, np.inf))
    exact = {"k": 1000, "min_popularity": shown, "max_popularity": shown}
    assert other in _ids(client.get(f"/artists/{artist}/similar", params=exact))
    assert other not in _ids(client.get(f"/artists/{artist}/similar", params={**exact, "min_popularity": above,
                                                                              "max_popularity": above}))  # fmt: skip


def test_shared_tags_are_only_tags_the_encoder_took(client: TestClient, loaded: LoadedIndex, built: Built) -> None:
    vocab = [t["tag"] for t in client.get("/tags", params={"limit": 100}).json()["results"]]
    many = {t: float(100 - i) for i, t in enumerate(vocab[:40])}  # heaviest first: the first 16 are used
    r = client.post("/similar", json={"tag": many, "k": 50, "explain": True})
    assert r.status_code == 200, r.text
    used = set(vocab[:16])
    shared = {t["tag"] for x in r.json()["results"] for t in x["explanation"]["shared_tags"]}
    assert shared and shared <= used


def test_work_caps_and_messages(client: TestClient, loaded: LoadedIndex, built: Built) -> None:
    ids = loaded.artist_ids[:100]
    big = client.post("/artists/similar", json={"artist_ids": ids, "k": 1000})
    assert big.status_code == 422 and "at most 20000" in big.json()["detail"][0]["msg"]
    explained = client.post("/artists/similar", json={"artist_ids": ids[:30], "k": 100, "explain": True})
    assert explained.status_code == 422 and "explained results" in explained.json()["detail"][0]["msg"]
    batch = client.post("/similar/batch", json={"queries": [{"tag": ["x"], "k": 1000}] * 21})
    assert batch.status_code == 422 and "at most 20000" in batch.json()["detail"][0]["msg"]
    empty = client.post("/artists/similar", content=b"", headers={"content-type": "application/json"})
    assert empty.status_code == 422 and "artist_ids" in empty.json()["detail"][0]["msg"]
    loose = [{"offset": True}, {"explain": "yes"}, {"min_popularity": True}, {"offset": "1"}, {"k": "3"}]
    for extra in loose:  # JSON types as the schema says
        r = client.post("/similar", json={"tag": ["x"], **extra})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", next(iter(extra))], extra
    assert client.get(f"/artists/{ids[0]}/similar?exclude=%ff").status_code == 400
    from inference.encoder import OnnxModel

    dim = OnnxModel(built.model).input_dim("audio")
    overflow = client.post("/similar", json={"audio": [3e38] * dim, "k": 3})  # the encoder overflows: named
    assert overflow.status_code == 422 and overflow.json()["detail"][0]["loc"] == ["body", "audio"], overflow.text
    batch = client.post("/similar/batch", json={"queries": [{"tag": ["x"]}, {"audio": [3e38] * dim}]})
    assert batch.status_code == 422


def test_explained_scores_are_written_as_the_plain_ones(client: TestClient, loaded: LoadedIndex) -> None:
    artist = loaded.artist_ids[4]
    plain = client.get(f"/artists/{artist}/similar", params={"k": 5}).text
    explained = client.get(f"/artists/{artist}/similar", params={"k": 5, "explain": "true"}).text
    scores = re.findall(r'"score":([-0-9.e]+)', plain)
    assert len(scores) == 5 and scores == re.findall(r'"score":([-0-9.e]+)', explained)


def test_the_prior_pool_is_the_same_on_both_paths(
    client: TestClient, loaded: LoadedIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold start's popularity prior re-ranks its best PRIOR_POOL candidates whatever k, the page or the
    filters: every answer and page is a slice of one ranking (the pool is made smaller than the tiny
    index here, so that it matters)."""
    import service.search

    tags = [t["tag"] for t in client.get("/tags", params={"limit": 30}).json()["results"]]
    wide = {tag: _ids(client.post("/similar", json={"tag": [tag], "k": 30})) for tag in tags[::2]}
    monkeypatch.setattr(service.search, "PRIOR_POOL", 30)  # k never exceeds it (the real pool is MAX_K)
    differs = 0
    for tag in tags[::2]:
        plain = client.post("/similar", json={"tag": [tag], "k": 30}).json()["results"]
        noop = client.post("/similar", json={"tag": [tag], "k": 30, "exclude": ["no-such-id"]}).json()["results"]
        assert noop == plain, tag
        for offset in (0, 10, 25):  # pages of the pool
            page = client.post("/similar", json={"tag": [tag], "k": 5, "offset": offset}).json()["results"]
            assert page == plain[offset : offset + 5], (tag, offset)
        differs += [x["artist_id"] for x in plain] != wide[tag]
    assert differs  # the pool's size matters here
