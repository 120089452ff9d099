"""The OLGA adapter on a tiny folder in the same format."""

from pathlib import Path

import numpy as np
import pytest

from catalog.featurize import FeaturizeConfig
from catalog.io import read_catalog
from catalog.olga import read_olga, write_olga_catalog
from catalog.tables import SetTable, VectorTable
from core.errors import CmarError
from tests.olga_folder import N_ARTISTS, make_olga_folder

SMALL = FeaturizeConfig(cf_factors=8, tag_dim=4, tag_min_artists=2)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_olga_folder(tmp_path_factory.mktemp("olga"))


def test_modalities_and_coverage(folder: Path) -> None:
    data = read_olga(folder, SMALL)
    catalog = data.catalog
    assert catalog.n_artists == N_ARTISTS
    audio, cf, tag = (catalog.modalities[n] for n in ("audio", "cf", "tag"))
    assert isinstance(audio, VectorTable) and isinstance(cf, VectorTable) and isinstance(tag, SetTable)
    np.testing.assert_array_equal(np.flatnonzero(audio.present), np.arange(20))
    np.testing.assert_allclose(audio.values[:20].mean(axis=0), 0, atol=1e-5)  # standardised
    np.testing.assert_allclose(audio.values[:20].std(axis=0), 1, atol=1e-4)
    assert cf.present[:30].all() and not cf.present[30:].any() and cf.dim == 8
    assert tag.present.all() and tag.dim == 4
    assert data.coverage["with_all_three"] == 20 and data.coverage["lastfm_artists_unjoined"] == 10
    # Tags from both sources end up in one vocabulary; "unjoinable" names an unknown Last.fm id.
    assert {"genre0", "seen live", "style1"} <= set(tag.vocab) and "unjoinable" not in tag.vocab
    assert [t for t in tag.vocab if "vine" in t] == ["1st vine"]  # spellings of one tag are one (normalize_tag)


def test_two_lastfm_ids_of_one_artist_are_merged(folder: Path) -> None:
    import csv

    with (folder / "lastfm_plays.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    expected = sum(int(r["plays"]) for r in rows if r["lastfm_artist_id"] in ("105", "205"))
    data = read_olga(folder, SMALL)
    assert data.plays[5] == expected


def test_ground_truth_edges_are_undirected_artist_rows(folder: Path) -> None:
    data = read_olga(folder, SMALL)
    assert len(data.edges) > 0
    assert (data.edges[:, 0] < data.edges[:, 1]).all()
    assert ((data.edges[:, 0] % 3) == (data.edges[:, 1] % 3)).all()


def test_written_catalogue_validates(folder: Path, tmp_path: Path) -> None:
    write_olga_catalog(folder, tmp_path / "catalog", SMALL)
    catalog = read_catalog(tmp_path / "catalog")
    assert catalog.artist_ids[0] == "00000000-0000-0000-0000-000000000000"
    assert catalog.modalities["tag"].present.sum() == N_ARTISTS


def test_missing_file_and_column_are_named(folder: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    (copy / "echonest_audio.csv").unlink()
    with pytest.raises(CmarError, match=r"echonest_audio\.csv: missing"):
        read_olga(copy, SMALL)
    (copy / "echonest_audio.csv").write_text("artist,f0\nx,1\n")
    with pytest.raises(CmarError, match=r"echonest_audio\.csv: missing column\(s\) mbid"):
        read_olga(copy, SMALL)
