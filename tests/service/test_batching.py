"""Cold-start queries answered together get, to the last bit, the answers they get alone."""

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import HTTPException

from catalog.io import read_catalog
from catalog.tables import SetTable, VectorTable
from service.app import create_app
from service.artifacts import Artifacts
from service.batching import answer_batch
from service.queries import QueryInputs, query_inputs
from service.schemas import SimilarQuery
from service.search import Hit
from service.settings import Settings
from tests.conftest import Built


@pytest.fixture(scope="module")
def artifacts(built: Built) -> Artifacts:
    return Artifacts.load(Settings(model_dir=built.model, index_dir=built.index))


def _bodies(built: Built, n: int, seed: int = 0) -> list[dict[str, object]]:
    """Cold-start bodies of catalogue artists: random subsets of their modalities, tag lists cut at random, random k."""
    rng = np.random.default_rng(seed)
    catalog = read_catalog(built.catalog)
    bodies: list[dict[str, object]] = []
    while len(bodies) < n:
        row = int(rng.integers(len(catalog.artist_ids)))
        body: dict[str, object] = {"k": int(rng.choice([1, 5, 10, 37, 200]))}
        for name, table in catalog.modalities.items():
            if not table.present[row] or rng.random() < 0.4:
                continue
            if isinstance(table, VectorTable):
                body[name] = table.values[row].tolist()
            elif isinstance(table, SetTable) and rng.random() < 0.5:  # the artist's own tags, cut at random
                span = list(range(table.indptr[row], table.indptr[row + 1]))[: int(rng.integers(1, 40))]
                body[name] = {table.vocab[table.items[i]]: float(table.weights[i]) for i in span}
            elif isinstance(table, SetTable):  # up to 24 tags of the vocabulary, over max_tags
                picked = rng.choice(len(table.vocab), int(rng.integers(1, 25)), replace=False)
                body[name] = {table.vocab[i]: float(rng.integers(1, 100)) for i in picked}
        if len(body) > 1:
            bodies.append(body)
    return bodies


def _key(hits: list[Hit] | HTTPException) -> object:
    assert not isinstance(hits, HTTPException)
    return [(h.artist_id, h.score, h.fragment) for h in hits]


def test_a_batch_answers_each_query_as_it_answers_it_alone(artifacts: Artifacts, built: Built) -> None:
    bodies = _bodies(built, 48)
    inputs: list[QueryInputs] = [query_inputs(artifacts, SimilarQuery.model_validate(b)) for b in bodies]  # type: ignore[attr-defined]
    ks = [int(b["k"]) for b in bodies]  # type: ignore[call-overload]
    lengths = {len(i.sets["tag"][1]) for i in inputs if "tag" in i.sets}
    assert min(lengths) <= 8 < max(lengths)  # set encoders padded to different slot counts in a batch and alone
    together = answer_batch(artifacts, inputs, ks)
    for i in range(len(bodies)):
        alone = answer_batch(artifacts, inputs[i : i + 1], ks[i : i + 1])[0]
        assert _key(together[i]) == _key(alone), i  # same ids, same float32 scores, same order
    # and in batches of other sizes and orders
    order = np.random.default_rng(1).permutation(len(bodies))[:17]
    shuffled = answer_batch(artifacts, [inputs[i] for i in order], [ks[i] for i in order])
    for j, i in enumerate(order):
        assert _key(shuffled[j]) == _key(together[i])


def test_one_query_the_encoders_overflow_on_does_not_fail_the_others(artifacts: Artifacts, built: Built) -> None:
    bodies = _bodies(built, 3)
    dim = artifacts.model.input_dim("audio")
    bad = SimilarQuery.model_validate({"audio": [3e38] * dim, "k": 5})  # type: ignore[attr-defined]
    inputs = [query_inputs(artifacts, SimilarQuery.model_validate(b)) for b in bodies]  # type: ignore[attr-defined]
    answers = answer_batch(artifacts, [inputs[0], query_inputs(artifacts, bad), *inputs[1:]], [5, 5, 5, 5])
    assert isinstance(answers[1], HTTPException) and answers[1].status_code == 422
    assert _key(answers[0]) == _key(answer_batch(artifacts, inputs[:1], [5])[0])
    assert all(not isinstance(a, HTTPException) and len(a) == 5 for i, a in enumerate(answers) if i != 1)


def test_concurrent_posts_are_batched_and_answered_as_alone(built: Built, tmp_path: Path) -> None:
    settings = Settings(model_dir=built.model, index_dir=built.index, writes_db=tmp_path / "w.sqlite3")
    app = create_app(settings)
    bodies = _bodies(built, 24, seed=2)

    async def run() -> tuple[list[bytes], list[bytes], int]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://cmar") as client:
                alone = [(await client.post("/similar", json=b)).content for b in bodies]
                batches = app.state.serving.batcher.batches
                together = await asyncio.gather(*(client.post("/similar", json=b) for b in bodies))
                return alone, [r.content for r in together], app.state.serving.batcher.batches - batches

    alone, together, batches = asyncio.run(run())
    assert together == alone  # byte for byte
    assert batches < len(bodies)  # they were answered in fewer batches than queries
