"""Tracks in the catalogue: tracks.parquet validated, artist audio derived from tracks, from-raw --tracks."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalog.io import read_catalog, write_catalog
from catalog.tables import Catalog, TrackTable, VectorTable
from cli.main import main
from core.errors import CmarError


def _catalog(tmp_path: Path, with_audio: bool) -> Path:
    ids = np.array(["a", "b", "c"], dtype=object)
    catalog = Catalog(artist_ids=ids, names=np.array(["A", "B", "C"], dtype=object), popularity=None)
    values = np.array([[1, 1], [0, 0], [0, 0]], dtype=np.float32)
    present = np.array([True, False, False])
    cf = VectorTable(present=np.ones(3, dtype=bool), values=np.eye(3, dtype=np.float32))
    catalog.modalities["cf"] = cf
    if with_audio:
        catalog.modalities["audio"] = VectorTable(present=present, values=values)
    catalog.tracks = TrackTable(
        track_ids=np.array(["t1", "t2", "t3", "t4"], dtype=object),
        rows=np.array([0, 1, 1, 1]),
        vectors=np.array([[5, 5], [1, 0], [0, 1], [2, 2]], dtype=np.float32),
        tags=[("rock",), (), ("pop", "rock"), ("pop",)],
    )
    write_catalog(tmp_path / "cat", catalog)
    return tmp_path / "cat"


def test_tracks_round_trip_and_derive_the_audio_of_artists_without_it(tmp_path: Path) -> None:
    catalog = read_catalog(_catalog(tmp_path, with_audio=True))
    assert catalog.tracks is not None and list(catalog.tracks.track_ids) == ["t1", "t2", "t3", "t4"]
    assert catalog.tracks.tags == [("rock",), (), ("pop", "rock"), ("pop",)]
    audio = catalog.modalities["audio"]
    assert isinstance(audio, VectorTable)
    assert audio.present.tolist() == [True, True, False]
    np.testing.assert_allclose(audio.values[0], [1, 1])  # its own audio is kept, not its track's
    np.testing.assert_allclose(audio.values[1], [1, 1])  # the mean of (1,0), (0,1), (2,2)


def test_a_catalogue_of_tracks_alone_gets_an_audio_table(tmp_path: Path) -> None:
    folder = _catalog(tmp_path, with_audio=False)
    (folder / "cf.parquet").unlink()
    catalog = read_catalog(folder)
    assert list(catalog.modalities) == ["audio"]
    assert catalog.modalities["audio"].present.tolist() == [True, True, False]


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("artist_id", ["a", "zz", "b", "b"], "artist_id 'zz' is not in artists.parquet"),
        ("track_id", ["t1", "t1", "t3", "t4"], "duplicate track_id 't1'"),
        ("track_id", ["t1", "t/2", "t3", "t4"], "row 1: track_id"),
        ("vector", [[1.0, 2.0], [1.0], [1.0, 2.0], [1.0, 2.0]], "same length"),
        ("vector", [[1.0, 2.0], [float("nan"), 0.0], [1.0, 2.0], [1.0, 2.0]], "NaN or infinity"),
        ("tags", [1, 2, 3, 4], "tags must hold lists of strings"),
    ],
)
def test_bad_tracks_are_refused_naming_the_file_and_the_problem(
    tmp_path: Path, column: str, values: list, message: str
) -> None:
    folder = _catalog(tmp_path, with_audio=True)
    table = pq.read_table(folder / "tracks.parquet")
    table = table.set_column(table.column_names.index(column), column, pa.array(values))
    pq.write_table(table, folder / "tracks.parquet")
    with pytest.raises(CmarError, match=r"tracks\.parquet") as err:
        read_catalog(folder)
    assert message in str(err.value)


def test_tracks_in_other_features_than_the_audio_are_refused(tmp_path: Path) -> None:
    folder = _catalog(tmp_path, with_audio=True)
    table = pq.read_table(folder / "tracks.parquet")
    table = table.set_column(2, "vector", pa.array([[1.0, 2.0, 3.0]] * 4))
    pq.write_table(table, folder / "tracks.parquet")
    with pytest.raises(CmarError, match="tracks have 3 audio values but the catalogue's audio has 2"):
        read_catalog(folder)


def test_from_raw_reads_tracks_with_tags_and_derives_audio(tmp_path: Path) -> None:
    (tmp_path / "artists.csv").write_text("artist_id,name\na,A\nb,B\nc,C\n")
    (tmp_path / "tracks.csv").write_text(
        "track_id,artist_id,tags,f0,f1\nt1,a,rock;Pop,1,2\nt2,a,,3,4\nt3,b,jazz,5,0\nt4,nobody,,0,0\n"
    )
    out = tmp_path / "cat"
    assert main(["-q", "catalog", "from-raw", str(out), "--artists", str(tmp_path / "artists.csv"),
                 "--tracks", str(tmp_path / "tracks.csv")]) == 0  # fmt: skip
    catalog = read_catalog(out)
    assert catalog.tracks is not None
    assert catalog.tracks.track_ids.tolist() == ["t1", "t2", "t3"]  # t4's artist is unknown: dropped
    assert catalog.tracks.tags == [("rock", "pop"), (), ("jazz",)]
    np.testing.assert_allclose(catalog.tracks.vectors.mean(axis=0), [0, 0], atol=1e-6)  # standardised
    assert catalog.modalities["audio"].present.tolist() == [True, True, False]


def test_from_raw_tracks_without_features_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "artists.csv").write_text("artist_id,name\na,A\n")
    (tmp_path / "tracks.csv").write_text("track_id,artist_id\nt1,a\n")
    code = main(["catalog", "from-raw", str(tmp_path / "cat"), "--artists", str(tmp_path / "artists.csv"),
                 "--tracks", str(tmp_path / "tracks.csv")])  # fmt: skip
    assert code != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no feature columns" in err[0]


def test_tracks_of_another_width_are_fine_when_no_audio_needs_deriving(tmp_path: Path) -> None:
    folder = _catalog(tmp_path, with_audio=True)
    catalog = read_catalog(folder)
    catalog.modalities["audio"].present[:] = True  # every artist has its own audio
    catalog.tracks.vectors = np.ones((4, 5), dtype=np.float32)  # tracks in other features
    write_catalog(tmp_path / "other", catalog)
    assert read_catalog(tmp_path / "other").tracks.dim == 5


def test_huge_track_values_are_one_error_line_without_a_warning(tmp_path: Path) -> None:
    folder = _catalog(tmp_path, with_audio=False)
    table = pq.read_table(folder / "tracks.parquet")
    values = pa.array([[1e300, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], pa.list_(pa.float64()))
    pq.write_table(table.set_column(2, "vector", values), folder / "tracks.parquet")
    with pytest.raises(CmarError, match="NaN or infinity"):  # filterwarnings=error: an overflow warning would fail
        read_catalog(folder)


def test_add_writes_keeps_the_tracks_of_kept_and_replaced_artists(tmp_path: Path) -> None:
    from catalog.writes import merge_writes

    catalog = read_catalog(_catalog(tmp_path, with_audio=True))
    merged = merge_writes(catalog, [("a", {"name": "A2", "cf": [0.0, 1.0, 0.0]}), ("c", None)]).catalog
    assert merged.tracks is not None
    owners = merged.artist_ids[merged.tracks.rows].tolist()
    assert sorted(zip(merged.tracks.track_ids.tolist(), owners, strict=True)) == [
        ("t1", "a"),
        ("t2", "b"),
        ("t3", "b"),
        ("t4", "b"),
    ]


def test_from_raw_refuses_too_many_tags_on_a_track(tmp_path: Path) -> None:
    (tmp_path / "artists.csv").write_text("artist_id,name\na,A\n")
    tags = ";".join(f"t{i}" for i in range(70))
    (tmp_path / "tracks.csv").write_text(f"track_id,artist_id,tags,f0\nt1,a,{tags},1\n")
    code = main(["-q", "catalog", "from-raw", str(tmp_path / "cat"), "--artists", str(tmp_path / "artists.csv"),
                 "--tracks", str(tmp_path / "tracks.csv")])  # fmt: skip
    assert code != 0 and not (tmp_path / "cat").exists()


def test_a_modality_table_without_rows_is_left_out_not_zero_wide(tmp_path: Path) -> None:
    folder = _catalog(tmp_path, with_audio=True)
    table = pq.read_table(folder / "cf.parquet")
    pq.write_table(table.slice(0, 0), folder / "cf.parquet")  # the header, no artist
    catalog = read_catalog(folder)
    assert "cf" not in catalog.modalities and catalog.modalities["audio"].dim == 2
