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
