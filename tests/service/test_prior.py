"""The popularity prior of thin cold-start queries: its weight rule, its effect, duplicates first, batch-invariant."""

import numpy as np
import pytest

from catalog.io import read_catalog
from service.artifacts import Artifacts
from service.batching import answer_batch
from service.queries import query_inputs
from service.schemas import SimilarQuery
from service.search import (
    PRIOR_WEIGHT_TAGS,
    PRIOR_WEIGHT_THIN,
    PRIOR_WEIGHT_WITH_CF,
    prior_weight,
)
from service.settings import Settings
from tests.conftest import Built


@pytest.fixture(scope="module")
def artifacts(built: Built) -> Artifacts:
    return Artifacts.load(Settings(model_dir=built.model, index_dir=built.index))


def test_weight_rule() -> None:
    assert (
        prior_weight(["tag"], 1) == prior_weight(["audio", "tag"], 3) == prior_weight(["audio"], 0) == PRIOR_WEIGHT_THIN
    )
    assert prior_weight(["tag"], 4) == PRIOR_WEIGHT_TAGS
    assert prior_weight(["cf"], 0) == prior_weight(["audio", "cf", "tag"], 2) == PRIOR_WEIGHT_WITH_CF


def test_prior_raises_the_popularity_of_a_thin_querys_answers(artifacts: Artifacts, built: Built) -> None:
    catalog = read_catalog(built.catalog)
    tags = catalog.modalities["tag"]
    bodies = [{"tag": [tags.vocab[i]], "k": 50} for i in range(0, len(tags.vocab), max(1, len(tags.vocab) // 20))]
    inputs = [query_inputs(artifacts, SimilarQuery.model_validate(b)) for b in bodies]
    prior = artifacts.index.popularity_prior
    row = artifacts.index.row_of
    mean_with = np.mean([prior[row[h.artist_id]] for hits in answer_batch(artifacts, inputs, [50] * len(inputs))
                         for h in hits])  # fmt: skip
    mean_without = np.mean([prior[row[h.artist_id]] for hits in answer_batch(artifacts, inputs, [50] * len(inputs),
                            prior=False) for h in hits])  # fmt: skip
    assert mean_with > mean_without + 0.05


def test_an_artists_own_inputs_still_find_it_first(artifacts: Artifacts, built: Built) -> None:
    catalog = read_catalog(built.catalog)
    audio = catalog.modalities["audio"]
    only = np.flatnonzero(audio.present & (catalog.present().sum(axis=0) == 1))[:5]  # thin: audio alone
    inputs = [query_inputs(artifacts, SimilarQuery.model_validate({"audio": audio.values[r].tolist()})) for r in only]
    for r, hits in zip(only, answer_batch(artifacts, inputs, [10] * len(only)), strict=True):
        assert hits[0].artist_id == catalog.artist_ids[r] and hits[0].score == pytest.approx(1, abs=1e-5)


def test_answers_with_a_prior_do_not_depend_on_the_batch(artifacts: Artifacts, built: Built) -> None:
    catalog = read_catalog(built.catalog)
    tags = catalog.modalities["tag"]
    bodies = [{"tag": [tags.vocab[i]], "k": k} for i, k in ((0, 5), (1, 300), (2, 10), (3, 1000))]
    inputs = [query_inputs(artifacts, SimilarQuery.model_validate(b)) for b in bodies]
    together = answer_batch(artifacts, inputs, [b["k"] for b in bodies])
    for one, body, expected in zip(inputs, bodies, together, strict=True):
        alone = answer_batch(artifacts, [one], [body["k"]])[0]
        assert [(h.artist_id, h.score) for h in alone] == [(h.artist_id, h.score) for h in expected]
