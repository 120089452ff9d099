"""Nothing a client sends produces a 5xx: random bodies and parameters against the live app."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import create_app
from service.settings import Settings
from tests.conftest import Built

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(min_value=-(10**40), max_value=10**40),
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=12,
)
vectors = st.lists(numbers, min_size=0, max_size=70)
bodies = st.fixed_dictionaries(
    {},
    optional={
        "audio": st.one_of(vectors, json_values),
        "cf": st.one_of(vectors, json_values),
        "tag": st.one_of(
            st.lists(st.sampled_from(["style00-tag0", "style01-tag3", "nope", ""]), max_size=20),
            st.dictionaries(st.sampled_from(["style00-tag0", "generic3", "x"]), numbers, max_size=3),
            st.lists(st.lists(numbers, min_size=30, max_size=33), max_size=3),
            json_values,
        ),
        "k": st.one_of(st.integers(min_value=-5, max_value=2000), json_values),
        "extra": json_values,
    },
)


@pytest.fixture(scope="module")
def client(built: Built) -> Iterator[TestClient]:
    with TestClient(
        create_app(Settings(model_dir=built.model, index_dir=built.index)), raise_server_exceptions=False
    ) as c:
        yield c


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(bodies, json_values))
def test_cold_start_never_5xx(client: TestClient, body: object) -> None:
    import json

    payload = json.dumps(body, allow_nan=True).encode()  # NaN and Infinity literals too
    r = client.post("/similar", content=payload, headers={"content-type": "application/json"})
    assert r.status_code in (200, 422), r.text
    if r.status_code == 422:
        assert all("loc" in d and "msg" in d for d in r.json()["detail"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    artist=st.text(min_size=1, max_size=12), k=st.one_of(st.integers(min_value=-3, max_value=3000), st.text(max_size=5))
)
def test_similar_by_id_never_5xx(client: TestClient, artist: str, k: object) -> None:
    from urllib.parse import quote

    segment = quote(artist, safe="").replace(".", "%2E")  # so the client does not resolve "." and ".."
    r = client.get(f"/artists/{segment}/similar", params={"k": k})
    assert r.status_code in (200, 404, 422), r.text
