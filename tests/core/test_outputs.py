"""Output paths: cmar replaces only folders it made, of the same kind (issue 10, kind 1)."""

from pathlib import Path

import pytest

from catalog.io import read_catalog
from cli.main import main
from core.errors import CmarError
from core.files import atomic_folder
from core.outputs import claim_output, folder_kind, mark_folder


def test_a_users_file_or_folder_is_refused_and_kept(tmp_path: Path) -> None:
    users_csv = tmp_path / "artists.csv"
    users_csv.write_text("artist_id,name\n")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.txt").write_text("mine")
    for path in (users_csv, notes):
        with pytest.raises(CmarError, match="refusing to replace it"):
            claim_output(path, "catalog")
        with pytest.raises(CmarError, match="refusing to replace it"), atomic_folder(path, "catalog") as tmp:
            mark_folder(tmp, "catalog")
    assert users_csv.read_text() == "artist_id,name\n" and (notes / "notes.txt").read_text() == "mine"


def test_same_kind_empty_and_new_paths_are_accepted(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    claim_output(tmp_path / "empty", "model")
    claim_output(tmp_path / "new" / "deeper", "model")
    for _ in range(2):  # the second write replaces the first: same kind
        with atomic_folder(tmp_path / "cat", "catalog") as tmp:
            mark_folder(tmp, "catalog")
    assert folder_kind(tmp_path / "cat") == "catalog"
    with pytest.raises(CmarError, match="is a cmar catalog folder; refusing"):
        claim_output(tmp_path / "cat", "index")


def test_overwrite_replaces_anything(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("x")
    with atomic_folder(target, "catalog", overwrite=True) as tmp:
        mark_folder(tmp, "catalog")
    assert folder_kind(target) == "catalog"


def test_an_uncreatable_parent_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(CmarError, match="cannot create its parent folder"):
        claim_output(tmp_path / "file" / "sub" / "out", "catalog")


@pytest.mark.parametrize(
    "argv",
    [
        ["catalog", "synthetic", "{out}", "--n-artists", "20", "--n-styles", "2"],
        ["train", "{catalog}", "--out", "{out}", "--epochs", "1"],
        ["export", "{catalog}", "--out", "{out}"],
        ["build-index", "{catalog}", "--model", "{catalog}", "--out", "{out}"],
        ["catalog", "from-raw", "{out}", "--artists", "{catalog}/artists.parquet", "--tags", "x.csv"],
        ["run", "--workdir", "{out}", "--no-serve"],
        ["evaluate", "synthetic", "--out", "{out}", "--epochs", "1"],
    ],
)
def test_every_command_refuses_a_users_folder(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    catalog = tmp_path / "cat"
    assert main(["-q", "catalog", "synthetic", str(catalog), "--n-artists", "20", "--n-styles", "2"]) == 0
    capsys.readouterr()
    assert main(["-q", *(a.format(out=out, catalog=catalog) for a in argv)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing to replace it" in err, err
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "keep me"


def test_a_cmar_folder_holding_a_users_files_is_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "cat"
    with atomic_folder(target, "catalog") as tmp:
        mark_folder(tmp, "catalog")
        (tmp / "artists.parquet").write_bytes(b"x")
    (target / "NOTES.md").write_text("mine")
    with pytest.raises(CmarError, match=r"also holds 1 entry cmar did not write \('NOTES.md'\)"):
        claim_output(target, "catalog")
    assert (target / "NOTES.md").read_text() == "mine"


def test_a_folder_with_a_stage_name_inside_is_not_a_workdir(tmp_path: Path) -> None:
    (tmp_path / "u" / "model").mkdir(parents=True)
    (tmp_path / "u" / "model" / "weights.bin").write_bytes(b"mine")
    assert folder_kind(tmp_path / "u") is None
    with pytest.raises(CmarError, match="a folder that cmar did not write"):
        claim_output(tmp_path / "u", "workdir")


def test_run_keeps_a_users_catalogue_in_its_workdir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = tmp_path / "data"
    assert main(["-q", "catalog", "synthetic", str(work / "catalog"), "--n-artists", "30", "--n-styles", "3"]) == 0
    assert main(["-q", "run", "--workdir", str(work), "--no-serve", "--epochs", "1"]) == 1
    assert "not the demo; use it with --catalog" in capsys.readouterr().err
    assert len(read_catalog(work / "catalog").artist_ids) == 30


def test_a_hand_made_catalogue_is_never_taken_for_cmars(tmp_path: Path) -> None:
    mine = tmp_path / "mycat"
    mine.mkdir()
    (mine / "artists.parquet").write_bytes(b"x")  # a catalogue made by hand, in the documented format
    with pytest.raises(CmarError, match="a folder that cmar did not write"):
        claim_output(mine, "catalog")


def test_cmar_serve_leaves_another_programs_sqlite_database_alone(tmp_path: Path) -> None:
    import sqlite3

    from core.store import WriteStore

    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE foo (x)")
    con.commit()
    con.close()
    before = db.read_bytes()
    with pytest.raises(CmarError, match="not a cmar write database"):
        WriteStore(db)
    assert db.read_bytes() == before and not Path(f"{db}-wal").exists()


def test_bench_keeps_a_users_work_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "R"
    (report / "work").mkdir(parents=True)
    (report / "manifest.json").write_text('{"kind": "report"}')
    (report / "work" / "mine.txt").write_text("mine")
    assert main(["-q", "bench", "--out", str(report), "--duration", "1", "--scale", "0", "--no-peer"]) == 1
    assert "cmar bench did not make" in capsys.readouterr().err
    assert (report / "work" / "mine.txt").read_text() == "mine"
