"""Catalogue validation: every problem names the file and what is wrong."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog.io import read_catalog, write_catalog
from catalog.synthetic import SyntheticSpec, generate
from catalog.tables import Catalog, SetTable, VectorTable
from core.errors import CmarError


def _small() -> Catalog:
    return Catalog(
        artist_ids=np.array(["a", "b", "c"], dtype=object),
        names=np.array(["A", "B", "C"], dtype=object),
        popularity=np.array([1.0, 2.0, 3.0], dtype=np.float32),
        modalities={
            "audio": VectorTable(
                present=np.array([True, False, True]), values=np.array([[1, 2], [0, 0], [3, 4]], dtype=np.float32)
            ),
            "tag": SetTable(
                vocab=["rock", "jazz"],
                vocab_vectors=np.eye(2, dtype=np.float32),
                indptr=np.array([0, 2, 3, 3]),
                items=np.array([1, 0, 0]),
                weights=np.array([5.0, 2.0, 1.0], dtype=np.float32),
            ),
        },
    )


def test_round_trip_preserves_every_table(tmp_path: Path) -> None:
    write_catalog(tmp_path / "c", _small())
    back = read_catalog(tmp_path / "c")
    assert back.artist_ids.tolist() == ["a", "b", "c"]
    audio = back.modalities["audio"]
    assert isinstance(audio, VectorTable)
    np.testing.assert_array_equal(audio.present, [True, False, True])
    np.testing.assert_array_equal(audio.values[2], [3, 4])
    tag = back.modalities["tag"]
    assert isinstance(tag, SetTable)
    ids, mask = tag.top_items(np.arange(3), 4)
    assert [tag.vocab[i] for i, m in zip(ids[0], mask[0], strict=True) if m] == ["jazz", "rock"]  # heaviest first
    np.testing.assert_array_equal(mask.sum(axis=1), [2, 1, 0])


def test_synthetic_round_trip(tmp_path: Path) -> None:
    synthetic = generate(SyntheticSpec(n_artists=200, n_styles=5))
    write_catalog(tmp_path / "s", synthetic.catalog)
    back = read_catalog(tmp_path / "s")
    np.testing.assert_array_equal(back.present(), synthetic.catalog.present())
    for name, table in synthetic.catalog.modalities.items():
        if isinstance(table, VectorTable):
            np.testing.assert_allclose(back.modalities[name].values, table.values)  # type: ignore[union-attr]


def _write(path: Path, columns: dict[str, list]) -> None:
    pq.write_table(pa.table(columns), path)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_catalog(tmp_path / "c", _small())
    return tmp_path / "c"


def test_missing_folder_and_artists_file(tmp_path: Path) -> None:
    with pytest.raises(CmarError, match="no such catalogue folder"):
        read_catalog(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CmarError, match=r"artists\.parquet is missing"):
        read_catalog(tmp_path / "empty")


def test_duplicate_artist_ids(folder: Path) -> None:
    _write(folder / "artists.parquet", {"artist_id": ["a", "b", "a"], "name": ["A", "B", "C"]})
    with pytest.raises(CmarError, match=r"artists.parquet: duplicate artist_id a"):
        read_catalog(folder)


def test_wrong_vector_length(folder: Path) -> None:
    _write(folder / "audio.parquet", {"artist_id": ["a", "c"], "vector": [[1.0, 2.0], [1.0, 2.0, 3.0]]})
    with pytest.raises(CmarError, match=r"audio.parquet: every vector must have the same length; row 1 \(c\) has 3"):
        read_catalog(folder)


def test_nan_vector(folder: Path) -> None:
    _write(folder / "audio.parquet", {"artist_id": ["a", "c"], "vector": [[1.0, 2.0], [float("nan"), 2.0]]})
    with pytest.raises(CmarError, match=r"audio.parquet: vector of c \(row 1\) holds NaN or infinity"):
        read_catalog(folder)


def test_tag_missing_from_vocabulary(folder: Path) -> None:
    _write(folder / "tag.parquet", {"artist_id": ["a"], "tag": ["polka"], "weight": [1.0]})
    with pytest.raises(CmarError, match=r"tag.parquet: tag 'polka' \(artist a\) is not in tag_vocab.parquet"):
        read_catalog(folder)


def test_unknown_artist_in_a_modality_table(folder: Path) -> None:
    _write(folder / "audio.parquet", {"artist_id": ["zz"], "vector": [[1.0, 2.0]]})
    with pytest.raises(CmarError, match=r"audio.parquet: artist_id 'zz' is not in artists.parquet"):
        read_catalog(folder)


def test_missing_column_and_missing_vocabulary(folder: Path) -> None:
    _write(folder / "audio.parquet", {"artist_id": ["a"], "embedding": [[1.0, 2.0]]})
    with pytest.raises(CmarError, match=r"audio.parquet: missing column\(s\) vector"):
        read_catalog(folder)
    (folder / "audio.parquet").unlink()
    (folder / "tag_vocab.parquet").unlink()
    with pytest.raises(CmarError, match=r"tag_vocab.parquet: missing"):
        read_catalog(folder)


def test_not_parquet_and_no_modality(folder: Path) -> None:
    (folder / "audio.parquet").write_text("artist_id,vector\n")
    with pytest.raises(CmarError, match=r"audio\.parquet: not a readable Parquet file"):
        read_catalog(folder)
    for name in ("audio.parquet", "tag.parquet", "tag_vocab.parquet"):
        (folder / name).unlink()
    with pytest.raises(CmarError, match="no modality table found"):
        read_catalog(folder)


def test_tag_weight_must_be_positive(folder: Path) -> None:
    _write(folder / "tag.parquet", {"artist_id": ["a"], "tag": ["rock"], "weight": [0.0]})
    with pytest.raises(CmarError, match=r"tag\.parquet: row 0 \(a, 'rock'\): a tag weight must be >= 1e-06"):
        read_catalog(folder)


def test_padded_inputs_weigh_tags_by_log_weight() -> None:
    tag = _small().modalities["tag"]
    assert isinstance(tag, SetTable)
    items, weights = tag.padded_inputs(np.arange(3), 3)
    np.testing.assert_allclose(weights, [[np.log1p(5), np.log1p(2), 0], [np.log1p(1), 0, 0], [0, 0, 0]], rtol=1e-6)
    np.testing.assert_array_equal(items[0, 0], tag.vocab_vectors[1])  # jazz, the heaviest, first
    assert not items[0, 2].any() and not items[2].any()
