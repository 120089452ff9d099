"""The cold-start evaluation: queried artists are in neither the training set nor the index; bodies as a client's."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from catalog.featurize import FeaturizeConfig
from catalog.io import read_catalog
from catalog.olga import read_olga
from core.manifest import IndexManifest, read_manifest
from evaluation.cold_start import INPUTS, query_body, run_cold_start, sample_queries, without
from model_export.config import TrainConfig
from tests.olga_folder import make_olga_folder

SMALL = FeaturizeConfig(cf_factors=8, tag_dim=4, tag_min_artists=2)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return read_olga(make_olga_folder(tmp_path_factory.mktemp("olga")), SMALL)


def test_queried_artists_are_left_out_of_training_and_the_index(data, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = run_cold_start(data, tmp_path / "cold", TrainConfig(epochs=2, batch_size=8), n_queries=5, progress=False)
    queried = set(out["query_artists"])
    assert len(queried) == out["n_queries"] == 5
    trained_on = set(read_catalog(tmp_path / "cold" / "catalog").artist_ids.tolist())  # what `train` read
    indexed = set(pq.read_table(tmp_path / "cold" / "index" / "artists.parquet").column("artist_id").to_pylist())
    assert not queried & trained_on and not queried & indexed
    assert read_manifest(tmp_path / "cold" / "index", IndexManifest).n_artists == out["n_indexed"]
    assert set(out["inputs"]) == set(INPUTS) | {"tag_top3 (no prior)", "all (no prior)"} | {
        "baseline:raw_tag_top3", "baseline:raw_tag_all", "baseline:popularity_top3_tags"
    }  # fmt: skip
    for r in out["inputs"].values():
        assert 0 <= r["ndcg_ci"][0] <= r["ndcg"] <= r["ndcg_ci"][1] <= 1
    assert out["ratio_to_all_inputs"]["all"] == pytest.approx(1.0)


def test_sample_is_full_coverage_artists_with_neighbours_and_seeded(data) -> None:  # type: ignore[no-untyped-def]
    rows = sample_queries(data, 4, seed=1)
    assert data.catalog.present()[:, rows].all()
    assert (rows == sample_queries(data, 4, seed=1)).all() and len(np.unique(rows)) == 4


def test_bodies_give_the_heaviest_tags_by_name_and_the_vectors(data) -> None:  # type: ignore[no-untyped-def]
    row = int(sample_queries(data, 1, seed=0)[0])
    tags = data.catalog.modalities["tag"]
    start, end = tags.indptr[row], tags.indptr[row + 1]
    heaviest = tags.vocab[tags.items[start]]
    assert query_body(data.catalog, row, "tag_top1") == {"k": 200, "tag": {heaviest: float(tags.weights[start])}}
    top3 = query_body(data.catalog, row, "audio+tag_top3")
    assert set(top3) == {"k", "tag", "audio"} and len(top3["tag"]) == min(3, end - start)
    assert set(query_body(data.catalog, row, "all")) == {"k", "tag", "audio", "cf"}
    assert query_body(data.catalog, row, "cf")["cf"] == data.catalog.modalities["cf"].values[row].tolist()


def test_without_drops_rows_from_every_table(data) -> None:  # type: ignore[no-untyped-def]
    reduced, kept = without(data.catalog, [0, 5])
    assert reduced.n_artists == data.catalog.n_artists - 2 and 0 not in kept and 5 not in kept
    tags = data.catalog.modalities["tag"]
    assert reduced.modalities["tag"].lengths([0]).tolist() == tags.lengths([1]).tolist()  # old row 1 is new row 0
