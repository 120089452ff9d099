"""The API under load, against a neutral ceiling.

Every case runs against the same `cmar serve` process, one after the other, at each
concurrency, with the load generator in its own process (`bench.loadgen`). The ceiling is
not an endpoint of the product: it is a bare ASGI app with a constant body (`bench.bare`),
served in its own process by the same server, protocol and limits, measured just before the
cases (`api.ceiling_bare.cN`). `ratio_to_ceiling` says how close each case comes to what the
server and the machine allow; the product's own `/healthz` is a case like the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from bench.loadgen import Request, run_load_subprocess
from bench.server import Server
from catalog.io import read_catalog
from catalog.tables import SetTable, VectorTable
from service.app import create_app
from service.artifacts import Artifacts
from service.settings import Settings

log = logging.getLogger(__name__)

CONCURRENCY = (1, 16, 64)
N_ARTISTS = 1000  # distinct artists the requests cycle through


def requests(catalog_dir: Path, index_dir: Path, seed: int = 0) -> dict[str, list[Request]]:
    """The request lists of every case, from the catalogue the index was built from."""
    from inference.index import load_index

    ids = load_index(index_dir, verify=False).artist_ids
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(ids), min(N_ARTISTS, len(ids)), replace=False)
    return {
        "healthz": [Request("GET", "/healthz")],
        "get_similar_k10": [Request("GET", f"/artists/{ids[i]}/similar?k=10") for i in pick],
        "get_similar_k200": [Request("GET", f"/artists/{ids[i]}/similar?k=200") for i in pick],
        "post_similar_k10": [Request("POST", "/similar", orjson.dumps(b)) for b in cold_start_bodies(catalog_dir, 10)],
    }


def cold_start_bodies(catalog_dir: Path, k: int, limit: int = N_ARTISTS) -> list[dict[str, Any]]:
    """POST /similar bodies with all three modalities of catalogue artists that have them."""
    catalog = read_catalog(catalog_dir)
    audio, cf, tag = (catalog.modalities[n] for n in ("audio", "cf", "tag"))
    assert isinstance(audio, VectorTable) and isinstance(cf, VectorTable) and isinstance(tag, SetTable)
    rows = np.flatnonzero(audio.present & cf.present & tag.present)[:limit]
    bodies = []
    for row in rows:
        span = slice(tag.indptr[row], tag.indptr[row + 1])
        tags = {tag.vocab[i]: float(w) for i, w in zip(tag.items[span], tag.weights[span], strict=True)}
        bodies.append({"audio": audio.values[row].tolist(), "cf": cf.values[row].tolist(), "tag": tags, "k": k})
    return bodies


CEILING = "ceiling_bare"


def run(
    running: Server,
    cases: dict[str, list[Request]],
    duration_s: float,
    concurrency: tuple[int, ...] = CONCURRENCY,
    warmup_s: float = 1.0,
    bare: Server | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """`api.CASE.cN` of bench.json: rps, p50_ms, p99_ms, errors and ratio_to_ceiling.

    With `bare` (the neutral ceiling's server), `api.ceiling_bare.cN` is measured first and
    every ratio is to it. Also the server's CPU time per request (`server_cpu_us`, warm-up
    included in both counts, so approximate): near 1e6 / rps when the server is the limit.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    plan: list[tuple[str, Server, list[Request]]] = [(case, running, reqs) for case, reqs in cases.items()]
    if bare is not None:
        plan.insert(0, (CEILING, bare, [Request("GET", "/")]))
    for case, target, reqs in plan:
        out[case] = {}
        for c in concurrency:
            cpu = target.cpu_s()
            result = run_load_subprocess(target.port, reqs, c, duration_s, warmup_s)
            used = target.cpu_s() - cpu
            out[case][f"c{c}"] = result.to_dict()
            out[case][f"c{c}"]["server_cpu_us"] = round(
                used / max(result.requests, 1) * 1e6 * duration_s / (duration_s + warmup_s), 1
            )
            log.info("%s c=%d: %.0f req/s, p50 %.2f ms, p99 %.2f ms", case, c, result.rps, result.p50_ms, result.p99_ms)
    for case in out:
        for level, entry in out[case].items():
            ceiling = out.get(CEILING, {}).get(level, {}).get("rps") or float("nan")
            entry["ratio_to_ceiling"] = round(entry["rps"] / ceiling, 3)
    return out


def _per_call_us(fn: Callable[[], object], calls: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def _scope(method: str, path: str, query: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


def _asgi_us(app: Any, method: str, path: str, query: bytes, body: bytes, calls: int, together: int = 1) -> float:
    """Microseconds per request through an ASGI app itself (no server, no network), `together` at a time."""
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def loop() -> float:
        await app(_scope(method, path, query), receive, send)
        t0 = time.perf_counter()
        for _ in range(calls):
            await asyncio.gather(*(app(_scope(method, path, query), receive, send) for _ in range(together)))
        return (time.perf_counter() - t0) / (calls * together) * 1e6

    us = asyncio.run(loop())
    if set(statuses) != {200}:
        raise RuntimeError(f"{method} {path}: statuses {sorted(set(statuses))} while profiling")
    return us


def profile(settings: Settings, catalog_dir: Path, calls: int = 200) -> dict[str, float]:
    """Where a request's time goes, in microseconds per call (per query in a batch), measured in this process.

    The stages are the functions the endpoints call (`service.endpoints`): for POST /similar,
    parsing and validating the body, the vocabulary look-ups, the encoders and fusion and the
    index search (alone, and per query in a batch of 16, as `service.batching` runs them),
    serialisation; for GET similar, a precomputed slice or a search. Then whole requests (GET
    similar also with explanations, with filters and in the dissimilar order)
    through the app without a server or network, beside the neutral ceiling's bare app, so
    that `asgi.front` is what the front layer and the endpoint's dispatch cost per request.
    """
    from bench import bare
    from service.endpoints import Call, cold_start_query
    from service.queries import encode_many, query_inputs
    from service.search import hits_json, search, search_many, similar_json

    artifacts = Artifacts.load(settings)
    bodies = [json.dumps(b).encode() for b in cold_start_bodies(catalog_dir, 10, limit=BATCH)]
    body = bodies[0]
    app = create_app(settings, artifacts)
    serving = app.state.serving
    serving.artifacts = artifacts  # as the lifespan would

    loop = asyncio.new_event_loop()

    def parse(raw: bytes) -> Any:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": raw, "more_body": False}

        call = Call(serving, artifacts, {}, b"", [(b"content-type", b"application/json")], receive)
        return loop.run_until_complete(cold_start_query(call))

    queries = [parse(b) for b in bodies]
    inputs = [query_inputs(artifacts, q) for q in queries]
    encoded = np.stack(encode_many(artifacts, inputs))  # type: ignore[arg-type]
    hits = search(artifacts, encoded[0], 10)
    artist = artifacts.index.artist_ids[0]
    n = len(inputs)
    stages = {
        "post.parse_validate": _per_call_us(lambda: parse(body), calls),
        "post.tag_lookup": _per_call_us(lambda: query_inputs(artifacts, queries[0]), calls),
        "post.encode_fuse": _per_call_us(lambda: encode_many(artifacts, inputs[:1]), calls),
        f"post.encode_fuse_batch{n}": _per_call_us(lambda: encode_many(artifacts, inputs), calls) / n,
        "post.search_k10": _per_call_us(lambda: search(artifacts, encoded[0], 10), calls),
        f"post.search_k10_batch{n}": _per_call_us(lambda: search_many(artifacts, encoded, [10] * n), calls) / n,
        "post.serialise": _per_call_us(lambda: hits_json(hits), calls),
        "get.lookup_k10": _per_call_us(lambda: similar_json(artifacts, artist, 10), calls),
        "get.search_k10": _per_call_us(lambda: hits_json(search(artifacts, encoded[0], 10, exclude=artist)), calls),
    }
    loop.close()
    stages |= name_search_us(calls=50)
    stages["asgi.bare"] = _asgi_us(bare.app, "GET", "/", b"", b"", calls)
    stages["asgi.healthz"] = _asgi_us(app, "GET", "/healthz", b"", b"", calls)
    stages["asgi.front"] = stages["asgi.healthz"] - stages["asgi.bare"]
    stages["asgi.get_similar_k10"] = _asgi_us(app, "GET", f"/artists/{artist}/similar", b"k=10", b"", calls)
    stages["asgi.get_similar_k1000_search"] = _asgi_us(app, "GET", f"/artists/{artist}/similar", b"k=1000", b"", calls)
    similar_path = f"/artists/{artist}/similar"
    stages["asgi.get_similar_k10_explain"] = _asgi_us(app, "GET", similar_path, b"k=10&explain=true", b"", calls)
    filtered = b"k=10&min_popularity=100&modalities=cf"  # the whole ranking, filtered (`service.ranking`)
    stages["asgi.get_similar_k10_filtered"] = _asgi_us(app, "GET", similar_path, filtered, b"", calls)
    stages["asgi.get_similar_k10_dissimilar"] = _asgi_us(app, "GET", similar_path, b"k=10&order=dissimilar", b"", calls)
    stages["asgi.post_similar_k10"] = _asgi_us(app, "POST", "/similar", b"", body, calls)
    stages[f"asgi.post_similar_k10_together{n}"] = _asgi_us(
        app, "POST", "/similar", b"", body, max(calls // n, 10), together=n
    )
    return {name: round(us, 1) for name, us in stages.items()}


BATCH = 16  # queries per batch in the profile


def name_search_us(n_names: int = 100_000, calls: int = 50, seed: int = 0) -> dict[str, float]:
    """Microseconds per name search (`service.names.NameIndex`) over n_names made-up names of one to four
    words: building the index, a one-letter prefix (a large share of the names match), a longer
    prefix, and one that needs fuzzy matching (a typo)."""
    from service.names import NameIndex, search_key

    rng = np.random.default_rng(seed)
    syllables = ["ra", "di", "o", "head", "si", "gur", "ros", "mog", "wai", "bo", "ards", "of", "ca", "na", "da"]
    words = ["".join(rng.choice(syllables, rng.integers(1, 4))) for _ in range(5000)]
    names = [" ".join(rng.choice(words, rng.integers(1, 5))).title() for _ in range(n_names)]
    started = time.perf_counter()
    index = NameIndex(names)
    build_us = (time.perf_counter() - started) * 1e6
    target = search_key(names[n_names // 2])
    prefix, typo = target[:6], target[:3] + target[4:9]  # a name's beginning; the same with a letter left out
    return {
        f"names.build_{n_names // 1000}k": round(build_us, 1),
        f"names.one_letter_{n_names // 1000}k": _per_call_us(lambda: index.match(target[:1], 10), calls),
        f"names.prefix_{n_names // 1000}k": _per_call_us(lambda: index.scores(prefix, 10), calls),
        f"names.typo_{n_names // 1000}k": _per_call_us(lambda: index.scores(typo, 10), calls),
    }
