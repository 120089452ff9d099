"""cmar tracks train and cmar disambiguate: a pooled artist is found, a whole one is not."""

import json
from pathlib import Path

import numpy as np
import pytest

from catalog.io import write_catalog
from catalog.tables import Catalog, TrackTable, VectorTable
from cli.main import main
from tests.tracks_data import synthetic_tracks, track_catalog


def _pooled_catalog(folder: Path) -> Path:
    """Artists of another draw; artist 'p0' holds the tracks of two of them (a homonym)."""
    audio, labels, tags = synthetic_tracks(n_artists=60, tracks=6, seed=0)  # the same world, tracks unseen
    rng = np.random.default_rng(9)
    audio = audio + rng.normal(0, 0.05, audio.shape).astype(np.float32)
    keep = labels < 12
    owners = np.where(labels[keep] == 1, 0, labels[keep])  # artist 1's tracks filed under artist 0
    n = 12
    catalog = Catalog(np.array([f"p{i}" for i in range(n)], dtype=object),
                      np.array([f"P {i}" for i in range(n)], dtype=object), None)  # fmt: skip
    catalog.tracks = TrackTable(np.array([f"x{i}" for i in range(int(keep.sum()))], dtype=object), owners,
                                audio[keep], [t for t, k in zip(tags, keep, strict=True) if k])  # fmt: skip
    write_catalog(folder, catalog)
    return folder


def test_disambiguate_lists_the_pooled_artist_with_its_two_clusters(track_model: Path, tmp_path: Path) -> None:
    catalog = _pooled_catalog(tmp_path / "cat")
    assert main(["-q", "disambiguate", str(catalog), "--model", str(track_model), "--out", str(tmp_path / "r")]) == 0
    report = json.loads((tmp_path / "r" / "disambiguation.json").read_text())
    assert report["n_artists_checked"] == 11  # p1 has no track left
    top = report["suspected"][0]
    assert top["artist_id"] == "p0" and len(top["clusters"]) == 2
    assert sorted(len(c) for c in top["clusters"]) == [6, 6]
    assert report["n_suspected"] <= 3  # a whole artist is rarely split
    assert "p0" in (tmp_path / "r" / "summary.md").read_text()


def test_disambiguate_refuses_tracks_of_another_width(track_model: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    track_catalog(tmp_path / "cat", n_artists=10, tracks=4, dim=7)
    code = main(["disambiguate", str(tmp_path / "cat"), "--model", str(track_model), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "7 audio values" in err[0] and "expects 12" in err[0]


def test_tracks_train_needs_tracks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    n = 10
    catalog = Catalog(np.array([f"a{i}" for i in range(n)], dtype=object), np.array(["x"] * n, dtype=object), None)
    catalog.modalities["cf"] = VectorTable(np.ones(n, dtype=bool), np.eye(n, dtype=np.float32))
    write_catalog(tmp_path / "plain", catalog)
    code = main(["tracks", "train", str(tmp_path / "plain"), "--out", str(tmp_path / "tm")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "no tracks.parquet" in err[0]
    assert not (tmp_path / "tm").exists()


def test_a_failed_disambiguation_leaves_no_report_folder(track_model: Path, tmp_path: Path) -> None:
    assert main(["-q", "disambiguate", str(tmp_path / "nowhere"), "--model", str(track_model),
                 "--out", str(tmp_path / "r")]) != 0  # fmt: skip
    assert not (tmp_path / "r").exists()


def test_a_folder_of_another_kind_is_named_as_such(track_model: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    catalog = _pooled_catalog(tmp_path / "cat")
    code = main(["disambiguate", str(catalog), "--model", str(catalog), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "expected a manifest of kind 'track_model', found kind 'catalog'" in err[0]


def test_summary_escapes_names_in_the_table() -> None:
    from pipeline.disambiguate import summary

    report = {"track_model": "m-1", "method": "triplet", "threshold": 1.0, "n_artists_checked": 1, "min_tracks": 4,
              "n_suspected": 1, "suspected": [{"artist_id": "x", "name": "A | B\nC", "n_tracks": 4, "confidence": 0.5,
                                               "clusters": [["1", "2"], ["3", "4"]]}]}  # fmt: skip
    row = next(line for line in summary(report).splitlines() if line.startswith("| x"))
    assert "A \\| B C" in row and row.count(" | ") == 4
