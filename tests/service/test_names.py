"""Finding artists by name: search forms, prefixes, typos, ranking, written artists, errors."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.names import EXACT, FUZZY_CUTOFF, PREFIX, WORD_END_PREFIX, WORD_PREFIX, NameIndex, score_key, search_key
from service.settings import Settings
from tests.conftest import Built
from tests.service.test_writes import AUTH, KEY, _indexed


@pytest.mark.parametrize(
    ("given", "form"),
    [
        ("Sigur Rós", "sigur ros"),
        ("  SIGUR-RÓS! ", "sigur ros"),
        ("AC/DC", "ac dc"),
        ("\uff2d\uff4f\uff47\uff57\uff41\uff49", "mogwai"),  # full-width letters
        ("!!!", ""),
    ],
)
def test_search_forms_ignore_case_accents_and_punctuation(given: str, form: str) -> None:
    assert search_key(given) == form


NAMES = [
    "Radiohead", "Radio Birdman", "The Radio Dept.", "Sigur Rós", "Artist 12 (live)", "Artist 124", "Mogwai", "Rádio"
]  # fmt: skip


@pytest.mark.parametrize(
    ("query", "first", "score"),
    [
        ("radiohead", "Radiohead", EXACT),
        ("radio", "Rádio", EXACT),  # accents ignored: "Rádio" is exactly "radio"
        ("radio b", "Radio Birdman", PREFIX),
        ("artist 12", "Artist 12 (live)", WORD_END_PREFIX),
        ("dept", "The Radio Dept.", WORD_PREFIX),
        ("sigur ros", "Sigur Rós", EXACT),
    ],
)
def test_exact_and_prefix_matches(query: str, first: str, score: float) -> None:
    index = NameIndex(NAMES)
    found = index.scores(search_key(query), 5)
    best = max(found, key=lambda row: found[row])
    assert NAMES[best] == first and found[best] == score


def test_a_typo_or_two_is_tolerated_below_every_exact_prefix() -> None:
    index = NameIndex(NAMES)
    for query, wanted in [("radiohaed", "Radiohead"), ("mogwia", "Mogwai"), ("artst 124", "Artist 124")]:
        found = index.scores(search_key(query), 3)
        best = max(found, key=lambda row: found[row])
        assert NAMES[best] == wanted and FUZZY_CUTOFF <= found[best] < WORD_PREFIX, (query, found)
    assert index.scores("zzzzzz", 3) == {}


def test_the_index_scores_as_one_name_at_a_time_does() -> None:
    rng = np.random.default_rng(0)
    words = ["radio", "head", "the", "sigur", "ros", "dept", "bird", "man", "12", "live", "mog", "wai"]
    names = [" ".join(rng.choice(words, rng.integers(1, 4))) for _ in range(300)]
    index = NameIndex(names)
    for query in ["radio", "the r", "man", "radoi head", "12 live", "sigur"]:
        found = index.scores(query, wanted=1000)  # fuzzy matching runs too
        for row, name in enumerate(names):
            expected = score_key(query, search_key(name))
            assert found.get(row) == expected, (query, name, found.get(row), expected)


@pytest.fixture
def client(built: Built, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(model_dir=built.model, index_dir=built.index, writes_db=tmp_path / "w.sqlite3", api_key=KEY)
    with TestClient(create_app(settings)) as c:
        yield c


def test_find_served_artists_by_name_ranked_then_written_ones_at_once(client: TestClient, built: Built) -> None:
    artist = client.get(f"/artists/{_indexed(built, 7)}").json()
    r = client.get("/artists", params={"q": artist["name"].upper(), "limit": 5})
    assert r.status_code == 200 and r.headers["x-request-id"]
    results = r.json()["results"]
    assert results[0]["artist_id"] == artist["artist_id"] and results[0]["score"] == EXACT
    assert set(results[0]) == {"artist_id", "name", "modalities", "popularity", "score"}
    scores = [(x["score"], x["popularity"] or 0.0) for x in results]
    assert scores == sorted(scores, reverse=True)  # by score, then popularity
    body = {"name": "Sigur Rós", "tag": ["style00-tag0"]}
    assert client.put("/artists/new-1", json=body, headers=AUTH).status_code == 201
    found = client.get("/artists", params={"q": "sigur ros"}).json()["results"]
    assert found[0]["artist_id"] == "new-1" and found[0]["popularity"] is None
    assert client.delete("/artists/new-1", headers=AUTH).status_code == 200
    assert all(x["artist_id"] != "new-1" for x in client.get("/artists", params={"q": "sigur ros"}).json()["results"])
    replaced = artist["artist_id"]
    renamed = {"name": "Renamed One", "tag": ["style00-tag0"]}
    assert client.put(f"/artists/{replaced}", json=renamed, headers=AUTH).status_code == 200
    old = client.get("/artists", params={"q": artist["name"]}).json()["results"]
    assert all(x["artist_id"] != replaced or x["name"] == "Renamed One" for x in old)  # the old name is gone


@pytest.mark.parametrize(
    ("query", "loc", "says"),
    [
        ("", ["query", "q"], "required"),
        ("q=", ["query", "q"], "letter or a digit"),
        ("q=%21%21", ["query", "q"], "letter or a digit"),
        ("q=" + "a" * 201, ["query", "q"], "at most 200"),
        ("q=a&limit=0", ["query", "limit"], "greater than or equal to 1"),
        ("q=a&limit=101", ["query", "limit"], "less than or equal to 100"),
        ("q=a&limit=x", ["query", "limit"], "valid integer"),
    ],
)
def test_bad_searches_are_422_naming_the_parameter(client: TestClient, query: str, loc: list, says: str) -> None:
    r = client.get(f"/artists?{query}")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == loc and says in r.json()["detail"][0]["msg"]


def test_tags_by_prefix_in_canonical_form_most_carried_first(client: TestClient, built: Built) -> None:
    from catalog.io import read_catalog
    from catalog.tables import SetTable
    from inference.index import load_index

    index = load_index(built.index, verify=False)
    catalog = read_catalog(built.catalog)
    table = catalog.modalities["tag"]
    assert isinstance(table, SetTable)
    rows = [int(np.flatnonzero(catalog.artist_ids == a)[0]) for a in index.artist_ids]
    expected: dict[str, int] = {}
    for r in rows:
        for i in table.items[table.indptr[r] : table.indptr[r + 1]].tolist():
            expected[table.vocab[i]] = expected.get(table.vocab[i], 0) + 1
    r = client.get("/tags", params={"q": "STYLE01-", "limit": 100})
    assert r.status_code == 200
    results = r.json()["results"]
    assert results and all(x["tag"].startswith("style01-") and x["modality"] == "tag" for x in results)
    assert all(x["artists"] == expected.get(x["tag"], 0) for x in results)  # counts over the indexed artists
    counts = [x["artists"] for x in results]
    assert counts == sorted(counts, reverse=True)
    top = client.get("/tags").json()["results"]
    assert len(top) == 10 and top[0]["artists"] == max(expected.values())
    assert client.get("/tags", params={"q": "no such tag"}).json()["results"] == []
    bad = client.get("/tags", params={"limit": "0"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "limit"]


def test_an_index_without_tag_counts_answers_tags_with_null_counts() -> None:
    from inference.encoder import Vocabulary
    from service.names import TagIndex

    def vocabulary(names: list[str]) -> Vocabulary:
        return Vocabulary(names, np.zeros((len(names), 2), dtype=np.float32))

    tags = TagIndex({"tag": vocabulary(["Post-Rock", "post rock", "Pop"])}, None)
    assert tags.find("po", 10) == [
        {"tag": "Pop", "modality": "tag", "artists": None},
        {"tag": "post rock", "modality": "tag", "artists": None},  # canonical order: " " before "-"
        {"tag": "Post-Rock", "modality": "tag", "artists": None},
    ]
    counted = TagIndex({"tag": vocabulary(["Post-Rock", "Pop"])}, {"tag": {"pop": 3, "post-rock": 9}})
    assert [t["tag"] for t in counted.find("", 10)] == ["Post-Rock", "Pop"]  # most carried first


def test_letters_unicode_does_not_decompose_and_apostrophes() -> None:
    assert search_key("Røyksopp") == "royksopp" and search_key("Łona") == "lona"
    assert search_key("Ænima") == "aenima" and search_key("Don't Stop") == "dont stop"


def test_fuzzy_ties_are_all_kept_so_popularity_can_rank_them() -> None:
    names = [f"Artist {i}" for i in range(40)]
    index = NameIndex(names)
    rows, scores = index.match("rtist", wanted=1)
    assert len(rows) > 1 and len(set(scores.tolist())) == 1  # every name ties: all returned, not the first row


def test_a_one_letter_query_over_many_names_ranks_like_a_full_sort() -> None:
    rng = np.random.default_rng(1)
    names = ["".join(rng.choice(list("abc "), rng.integers(1, 9))).strip() or "a" for _ in range(5000)]
    index = NameIndex(names)
    rows, scores = index.match("a", wanted=10)
    brute = {row: score_key("a", search_key(name)) for row, name in enumerate(names)}
    assert dict(zip(rows.tolist(), scores.tolist(), strict=True)) == {r: s for r, s in brute.items() if s}
