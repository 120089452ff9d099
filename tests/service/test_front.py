"""One path per query kind: every way a request reaches an endpoint passes its checks; the
OpenAPI document lists what `Front` serves; methods and routes are told apart."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.app import CmarApp, create_app
from service.endpoints import Call, endpoints
from service.routes import documented
from service.settings import Settings
from tests.conftest import Built
from tests.service.test_writes import AUTH, KEY, _body_of, _indexed


@pytest.fixture
def client(built: Built, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(model_dir=built.model, index_dir=built.index, writes_db=tmp_path / "w.sqlite3", api_key=KEY)
    with TestClient(create_app(settings)) as c:
        yield c


def _teapot(call: Call) -> None:
    raise HTTPException(status_code=418, detail=f"checked {call.params}")


def test_a_check_added_to_an_endpoint_applies_to_every_way_a_request_reaches_it(
    client: TestClient, built: Built
) -> None:
    app = client.app
    assert isinstance(app, CmarApp)
    artist = _indexed(built, 3)
    twin = _body_of(built, _indexed(built, 4), "Twin")
    assert client.put("/artists/written-1", json=twin, headers=AUTH).status_code == 201
    # Every way an answer can be made, warmed first: the body cache, the precomputed lists
    # (with and without written artists merged), a search, a written artist's own list.
    ways = [
        ("GET", f"/artists/{artist}/similar?k=10"),  # precomputed slice, merged with the write
        ("GET", f"/artists/{artist}/similar"),  # default k
        ("GET", f"/artists/{artist}/similar?k=1000"),  # a search
        ("GET", "/artists/written-1/similar?k=5"),  # a written artist: a search
        ("GET", f"/artists/{artist}"),
        ("GET", "/artists/written-1"),
        ("GET", "/artists?q=twin"),
        ("GET", "/tags?q=style"),
        ("POST", "/similar"),
    ]
    for method, path in ways:
        r = client.request(method, path, json={**twin, "name": None} if method == "POST" else None)
        assert r.status_code in (200, 422), (path, r.text)
        if method == "GET":
            assert client.get(path).status_code == 200  # now also in the body cache where it applies
    cached = app.state.serving.artifacts.overlay.cache
    assert (artist, 10) in cached and (artist, 1000) in cached
    for endpoint in app.front.endpoints.values():
        endpoint.checks.append(_teapot)
    for method, path in [*ways, ("HEAD", f"/artists/{artist}/similar?k=10"), ("GET", "/healthz")]:
        r = client.request(method, path, content=b"{}" if method == "POST" else None)
        assert r.status_code == 418, (method, path, r.status_code)
        assert r.headers["x-request-id"] and r.headers["x-model-version"]
    # the check ran before any parsing: a junk k or body is refused by the check, not validated
    assert client.get(f"/artists/{artist}/similar?k=abc").status_code == 418
    assert client.post("/similar", content=b"not json").status_code == 418
    metrics = client.get("/metrics").text
    assert 'route="/artists/{artist_id}/similar",status="418"' in metrics
    # another app's table is its own
    assert all(_teapot not in e.checks for e in endpoints().values())


def _closed_reads(built: Built, tmp_path: Path) -> Settings:
    """Settings under which reads need the key too."""
    db = tmp_path / "w.sqlite3"
    return Settings(model_dir=built.model, index_dir=built.index, writes_db=db, api_key=KEY, read_key_required=True)


def test_the_read_key_is_one_check_on_every_query_endpoint(built: Built, tmp_path: Path) -> None:
    settings = _closed_reads(built, tmp_path)
    artist = _indexed(built, 2)
    with TestClient(create_app(settings)) as c:
        for key in (None, KEY):  # the second pass has every body cached
            for method, path in [
                ("GET", f"/artists/{artist}/similar"),
                ("GET", f"/artists/{artist}"),
                ("GET", "/readyz"),
            ]:
                assert c.request(method, path, headers={"X-API-Key": KEY}).status_code == 200
                r = c.request(method, path, headers={"X-API-Key": key + "x"} if key else None)
                assert r.status_code == (403 if key else 401), (path, r.text)
            assert c.post("/similar", json={"audio": [0.0] * 3}).status_code == 401
        assert c.get("/healthz").status_code == 200  # liveness probes carry no key


def test_the_read_key_opens_reads_and_nothing_else(built: Built, tmp_path: Path) -> None:
    settings = _closed_reads(built, tmp_path).model_copy(update={"read_key": SecretStr("reader-only")})
    artist = _indexed(built, 2)
    reader = {"Authorization": "Bearer reader-only"}
    with TestClient(create_app(settings)) as c:
        for path in (f"/artists/{artist}/similar", f"/artists/{artist}", "/map", "/readyz"):
            assert c.get(path, headers=reader).status_code in (200, 404), path  # /map: 404, no map here
            assert c.get(path).status_code == 401
        assert c.get(f"/artists/{artist}", headers=AUTH).status_code == 200  # the API key reads too
        assert c.put("/artists/x", json=_body_of(built, artist, "X"), headers=reader).status_code == 403
        assert c.delete(f"/artists/{artist}", headers=reader).status_code == 403
        assert c.post("/admin/swap", json={"dry_run": True}, headers=reader).status_code == 403


def test_the_openapi_document_lists_exactly_the_endpoints_front_serves(client: TestClient) -> None:
    served = {(e.method, e.template) for e in endpoints().values()}
    declared = {(m, r.path) for r in documented.routes for m in r.methods}  # type: ignore[attr-defined]
    assert served == declared
    paths = client.get("/openapi.json").json()["paths"]
    for method, template in served:
        assert method.lower() in paths[template], template
    assert "k" in {p["name"] for p in paths["/artists/{artist_id}/similar"]["get"]["parameters"]}
    assert paths["/similar"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "put" in paths["/artists/{artist_id}"] and "get" in paths["/artists/{artist_id}"]


def test_methods_are_told_apart_from_routes(client: TestClient, built: Built) -> None:
    artist = _indexed(built, 1)
    r = client.post(f"/artists/{artist}/similar")
    assert r.status_code == 405 and r.headers["allow"] == "GET" and r.headers["x-request-id"]
    r = client.get("/similar")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = client.patch(f"/artists/{artist}")
    assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"DELETE", "GET", "PUT"}
    assert client.delete("/artists/nobody", headers=AUTH).status_code in (200, 404)  # FastAPI's route, not a 405
    assert client.get("/nowhere").status_code == 404


def test_a_cold_start_body_must_be_json(client: TestClient) -> None:
    r = client.post("/similar", content=b"audio=1", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 422 and "Content-Type: application/json" in r.json()["detail"][0]["msg"]
    r = client.post("/similar", content=b"x" * 2_000_000, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b'\xff\xfe{"audio": [1]}', 400, "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "recursion limit"),
        (b'{"k": 1' + b"0" * 5000 + b', "tag": ["x"]}', 400, "out of range"),
        (b"{bad", 422, "Invalid JSON"),
    ],
)
def test_unreadable_cold_start_bodies_are_400_and_malformed_ones_422(
    client: TestClient, body: bytes, status: int, says: str
) -> None:
    r = client.post("/similar", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status and says in r.text


def test_the_query_endpoints_live_below_the_root_path(built: Built, tmp_path: Path) -> None:
    settings = _closed_reads(built, tmp_path)
    artist = _indexed(built, 1)
    with TestClient(create_app(settings), root_path="/api") as c:
        assert c.get(f"/api/artists/{artist}/similar", headers=AUTH).json()["artist_id"] == artist
        assert c.get(f"/api/artists/{artist}", headers=AUTH).status_code == 200
        assert c.get(f"/api/artists/{artist}/similar").status_code == 401  # the check holds there too
        assert c.get("/api/healthz").json() == {"status": "ok"}
        r = c.patch(f"/api/artists/{artist}", headers=AUTH)
        assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == {"DELETE", "GET", "PUT"}


def test_every_request_is_counted_under_its_route(client: TestClient, built: Built) -> None:
    artist = _indexed(built, 1)
    client.post(f"/artists/{artist}/similar")  # 405
    client.get("/openapi.json")
    assert client.put("/artists/big", content=b" " * 1_100_000, headers=AUTH).status_code == 413  # before routing
    r = client.get(f"/artists/{artist}/similar/")
    assert r.status_code == 404 and "location" not in r.headers  # no redirect to the client's Host header
    metrics = client.get("/metrics").text
    assert 'cmar_requests_total{method="POST",route="/artists/{artist_id}/similar",status="405"} 1.0' in metrics
    assert 'cmar_requests_total{method="GET",route="/openapi.json",status="200"} 1.0' in metrics
    assert 'cmar_requests_total{method="PUT",route="/artists/{artist_id}",status="413"} 1.0' in metrics


def test_a_declared_body_over_the_limit_is_refused_before_it_is_read(client: TestClient) -> None:
    r = client.post(
        "/similar", content=b'{"k": 1}', headers={"content-type": "application/json", "content-length": "2000000"}
    )
    assert r.status_code == 413 and "2000000" in r.json()["detail"]


def test_no_cache_keeps_what_clients_make_up() -> None:
    from service import endpoints as e

    for i in range(50):
        assert e.query_k(b"k=5&junk=" + str(i).encode() * 40) == 5
    assert all(len(key) <= e._K_CACHE_KEY_BYTES for key in e._K_CACHE)


def test_the_documentation_pages_load_nothing_from_outside(client: TestClient) -> None:
    import re

    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html)
        assert urls and all(u.startswith("/") for u in urls), (page, urls)  # this host only
        assert "fonts.googleapis" not in html and "cdn." not in html
        for url in urls:
            if not url.endswith(".json"):
                assert client.get(url).status_code == 200, url


def test_the_docs_pages_keep_the_browser_on_this_host(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        policy = client.get(page).headers["content-security-policy"]
        assert "img-src 'self' data:" in policy and "connect-src 'self'" in policy  # ReDoc's CDN logo is blocked


def test_the_public_schema_shows_no_model_data_when_reads_are_closed(built: Built, tmp_path: Path) -> None:
    with TestClient(create_app(_closed_reads(built, tmp_path))) as c:
        body = c.get("/openapi.json").json()["paths"]["/similar"]["post"]["requestBody"]["content"]["application/json"]
        assert "example" not in body


def test_the_schema_s_examples_are_answered_by_the_served_model(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    paths = list(document["paths"])
    assert paths[:2] == ["/artists/{artist_id}/similar", "/similar"]  # the similar routes come first
    example = document["paths"]["/similar"]["post"]["requestBody"]["content"]["application/json"]["example"]
    r = client.post("/similar", json=example)
    assert r.status_code == 200 and len(r.json()["results"]) == example["k"]
    for path in ("/similar/batch", "/artists/similar"):
        example = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]["example"]
        r = client.post(path, json=example)
        assert r.status_code == 200, r.text
        assert all(len(a["results"]) == 5 for a in r.json()["answers"])
    put = document["paths"]["/artists/{artist_id}"]["put"]["requestBody"]["content"]["application/json"]["example"]
    assert client.put("/artists/from-the-docs", json=put, headers=AUTH).status_code == 201
