"""A catalogue from raw CSV files, through the CLI."""

from pathlib import Path

import numpy as np
import pytest

from catalog.io import read_catalog
from catalog.tables import SetTable, VectorTable
from cli.main import main


def _csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def raw(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    n = 30
    artists = _csv(tmp_path / "artists.csv", "artist_id,name", [f"x{i},Artist {i}" for i in range(n)])
    plays = [f"u{u},x{i},{int(rng.integers(1, 50))}" for u in range(40) for i in range(20) if i % 2 == u % 2]
    plays.append("u1,nobody,5")  # unknown artist: ignored with a warning
    tags = [f"x{i},genre{i % 2},{int(rng.integers(1, 9))}" for i in range(n)]
    tags += [f"x{i},mood{i % 3},1" for i in range(n)] + ["x0,once,1"]
    audio = [f"x{i},{rng.normal():.3f},{rng.normal():.3f},{rng.normal():.3f}" for i in range(0, n, 3)]
    return {
        "artists": artists,
        "plays": _csv(tmp_path / "plays.csv", "user_id,artist_id,count", plays),
        "tags": _csv(tmp_path / "tags.csv", "artist_id,tag,count", tags),
        "audio": _csv(tmp_path / "audio.csv", "artist_id,f0,f1,f2", audio),
    }


def test_from_raw_writes_a_valid_catalogue(raw: dict[str, Path], tmp_path: Path) -> None:
    args = ["-q", "catalog", "from-raw", str(tmp_path / "cat")]
    args += [arg for kind, path in raw.items() for arg in (f"--{kind}", str(path))]
    assert main(args) == 0
    catalog = read_catalog(tmp_path / "cat")
    cf, tag, audio = (catalog.modalities[m] for m in ("cf", "tag", "audio"))
    assert isinstance(cf, VectorTable) and isinstance(tag, SetTable) and isinstance(audio, VectorTable)
    np.testing.assert_array_equal(np.flatnonzero(cf.present), np.arange(20))
    assert tag.present.all() and "once" not in tag.vocab and {"genre0", "mood2"} <= set(tag.vocab)
    np.testing.assert_array_equal(np.flatnonzero(audio.present), np.arange(0, 30, 3))
    assert audio.dim == 3 and catalog.popularity is not None and catalog.popularity[1] > 0


def test_from_raw_errors_are_one_line(raw: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["catalog", "from-raw", str(tmp_path / "c"), "--artists", str(raw["artists"])]) == 1
    assert "give at least one of --plays, --tags, --audio" in capsys.readouterr().err
    bad = _csv(tmp_path / "bad.csv", "artist,tag,count", ["x1,a,1"])
    assert main(["catalog", "from-raw", str(tmp_path / "c"), "--artists", str(raw["artists"]), "--tags", str(bad)]) == 1
    assert "missing column(s) artist_id" in capsys.readouterr().err


def _from_raw(tmp_path: Path, *extra: str) -> list[str]:
    return ["-q", "catalog", "from-raw", str(tmp_path / "out"), *extra]


def test_latin1_tab_separated_files_read_with_encoding_and_delimiter(
    raw: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = raw["tags"].read_text().splitlines()
    rows = [line.replace(",", "\t") for line in lines] + ["x3\tmúsica brasileira\t2", "x4\tmúsica brasileira\t2"]
    rows += ["x5\tmúsica brasileira\t1"]
    tags = tmp_path / "tags.dat"
    tags.write_bytes("\n".join(rows).encode("latin-1") + b"\n")
    raw["artists"].write_text(raw["artists"].read_text().replace(",", "\t"))
    assert main(_from_raw(tmp_path, "--artists", str(raw["artists"]), "--tags", str(tags))) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "artists.csv" in err and "delimiter" in err, err
    assert main(_from_raw(tmp_path, "--artists", str(raw["artists"]), "--tags", str(tags), "--delimiter", "\\t")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tags.dat" in err and "--encoding latin-1" in err, err
    argv = _from_raw(tmp_path, "--artists", str(raw["artists"]), "--tags", str(tags), "--delimiter", "\\t")
    assert main([*argv, "--encoding", "latin-1"]) == 0
    tag = read_catalog(tmp_path / "out").modalities["tag"]
    assert isinstance(tag, SetTable) and "música brasileira" in tag.vocab


def test_user_mistakes_are_one_line(raw: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rare = _csv(tmp_path / "rare.csv", "artist_id,tag,count", ["x1,a,1", "x2,b,1"])
    header_only = _csv(tmp_path / "none.csv", "artist_id,name", [])
    blocked = tmp_path / "file"
    blocked.write_text("x")
    cases = [
        (["--artists", str(raw["artists"]), "--tags", str(rare)], "nothing to embed"),
        (["--artists", str(header_only), "--tags", str(raw["tags"])], "no artist rows"),
        (["--artists", str(raw["artists"]), "--tags", str(raw["tags"]), "--encoding", "klingon"], "encoding"),
    ]
    for extra, message in cases:
        assert main(_from_raw(tmp_path, *extra)) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    argv = [
        "-q",
        "catalog",
        "from-raw",
        str(blocked / "out"),
        "--artists",
        str(raw["artists"]),
        "--tags",
        str(raw["tags"]),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot create" in err, err


def test_strings_stay_as_written_and_every_change_is_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import json
    import logging

    artists = _csv(
        tmp_path / "a.csv", "artist_id,name", ["NA,NULL", "nan,N/A", *(f"x{i},Artist {i}" for i in range(8))]
    )
    tags = [f"{a},{t},2" for a in ("NA", "nan", *(f"x{i}" for i in range(8))) for t in ("NA", "rock", "Post-Rock")]
    tags += ["x0,rock,-1", "x1,rock,", "x2,rock,0", "x3,ROCK,4", "ghost,rock,1"]
    path = _csv(tmp_path / "t.csv", "artist_id,tag,count", tags)
    with caplog.at_level(logging.INFO):
        assert main(["catalog", "from-raw", str(tmp_path / "out"), "--artists", str(artists), "--tags", str(path)]) == 0
    catalog = read_catalog(tmp_path / "out")
    assert catalog.artist_ids.tolist()[:2] == ["NA", "nan"] and catalog.names.tolist()[:2] == ["NULL", "N/A"]
    tag = catalog.modalities["tag"]
    assert isinstance(tag, SetTable) and {"na", "rock", "post-rock"} <= set(tag.vocab)
    changes = json.loads((tmp_path / "out" / "manifest.json").read_text())["changes"]
    assert changes == {
        "tags rows naming an artist missing from the artists file (dropped)": 1,
        "tags rows with an empty or NaN count (dropped)": 1,
        "tags rows with a zero count (dropped)": 1,
        "tags rows with a negative count (dropped)": 1,
        "tags rows repeating an earlier pair (counts summed)": 1,
    }
    summary = [r.getMessage() for r in caplog.records if r.getMessage().startswith("from-raw:")]
    assert len(summary) == 1 and "negative count (dropped): 1" in summary[0]


def test_a_count_that_is_not_a_number_names_the_row(
    raw: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _csv(tmp_path / "bad.csv", "user_id,artist_id,count", ["u1,x1,3", "u1,x2,lots"])
    assert main(_from_raw(tmp_path, "--artists", str(raw["artists"]), "--plays", str(bad))) == 1
    err = capsys.readouterr().err
    assert "bad.csv: row 3: column count must hold a number, got 'lots'" in err and err.count("\n") == 1


def test_ids_the_api_cannot_address_are_refused(
    raw: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    artists = _csv(tmp_path / "a.csv", "artist_id,name", ["x1,One", "AC/DC,AC/DC"])
    assert main(_from_raw(tmp_path, "--artists", str(artists), "--tags", str(raw["tags"]))) == 1
    err = capsys.readouterr().err
    assert "a.csv: row 3: artist id 'AC/DC' contains '/'" in err and err.count("\n") == 1
