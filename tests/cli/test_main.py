"""The command line: one-line errors with non-zero exits, --help everywhere, stages that chain."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from catalog.synthetic import SyntheticCatalog
from cli.main import build_parser, main
from tests.conftest import Built

SUBCOMMANDS = [
    ["run"],
    ["catalog", "synthetic"],
    ["catalog", "validate"],
    ["catalog", "from-raw"],
    ["evaluate", "olga"],
    ["evaluate", "olga-search"],
    ["train"],
    ["export"],
    ["build-index"],
    ["serve"],
    ["evaluate", "synthetic"],
]


@pytest.mark.parametrize("words", SUBCOMMANDS)
def test_help_on_every_subcommand(words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*words, "--help"])
    assert exit_info.value.code == 0
    assert "usage: cmar" in capsys.readouterr().out


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, timeout=120)


def _one_line_error(proc: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert proc.returncode == code
    lines = [line for line in proc.stderr.splitlines() if line.startswith("cmar")]
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_folder(tmp_path: Path) -> None:
    _one_line_error(_run("train", str(tmp_path / "nope"), "--out", str(tmp_path / "ck")), 1, "no such catalogue folder")


def test_wrong_format(tmp_path: Path) -> None:
    (tmp_path / "artists.parquet").write_text("artist_id,name\na,A\n")
    _one_line_error(_run("catalog", "validate", str(tmp_path)), 1, "not a readable Parquet file")


def test_usage_error(tmp_path: Path) -> None:
    _one_line_error(_run("train", str(tmp_path)), 2, "the following arguments are required: --out")
    _one_line_error(_run("train", str(tmp_path), "--out", "x", "--epochs", "many"), 2, "expected a whole number")
    for option, value, fragment in (
        ("--epochs", "99999999999999999999", "expected 1 to 100,000"),
        ("--lr", "nan", "expected a finite number > 0"),
        ("--lr", "inf", "expected a finite number > 0"),
        ("--seed", "-1", "expected 0 to 4,294,967,295"),
    ):
        _one_line_error(_run("train", str(tmp_path), "--out", "x", option, value), 2, fragment)
    _one_line_error(_run("run", "--port", "70000"), 2, "expected 0 to 65,535")
    _one_line_error(_run("catalog", "synthetic", str(tmp_path / "s"), "--n-artists", "99999999999999"), 2, "expected 2")
    _one_line_error(_run("bench", "--out", str(tmp_path / "b"), "--duration", "nan"), 2, "finite number")


def test_bad_training_value(tiny_catalog: tuple[Path, SyntheticCatalog], tmp_path: Path) -> None:
    proc = _run("train", str(tiny_catalog[0]), "--out", str(tmp_path / "ck"), "--subset-weight", "nan")
    _one_line_error(proc, 1, "subset_weight must be a finite number >= 0")
    for option, spec, fragment in (
        ("--completion", "audio", "--completion: expected NAME=WEIGHT"),
        ("--completion", "audio=x", "--completion: expected NAME=WEIGHT"),
        ("--completion", "cf+audio=1", "in that order"),
        ("--completion", "audio+cf+tag=1", "nothing is missing"),
        ("--modality-weights", "tag", "--modality-weights: expected NAME=WEIGHT"),
        ("--modality-weights", "video=1", "unknown modality 'video'"),
        ("--modality-weights", "tag=0", "must be a number > 0"),
    ):
        proc = _run("train", str(tiny_catalog[0]), "--out", str(tmp_path / "ck"), option, spec)
        _one_line_error(proc, 1, fragment)
    assert not (tmp_path / "ck").exists()


def test_artifacts_from_another_model_version(built: Built, tmp_path: Path) -> None:
    import json
    import shutil

    model = tmp_path / "model"
    shutil.copytree(built.model, model)
    manifest = json.loads((model / "manifest.json").read_text())
    manifest["model_version"] = "m-ffffffffffffffff"
    (model / "manifest.json").write_text(json.dumps(manifest))
    proc = _run("serve", "--model", str(model), "--index", str(built.index), "--port", "0")
    _one_line_error(proc, 1, "index was built with model")
    _one_line_error(_run("export", str(built.model), "--out", str(tmp_path / "m2")), 1, "not a checkpoint folder")


def test_catalog_synthetic_then_validate(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert main(["catalog", "synthetic", str(tmp_path / "c"), "--n-artists", "100", "--n-styles", "4"]) == 0
    assert main(["catalog", "validate", str(tmp_path / "c")]) == 0
    assert "100 artists" in caplog.text


def test_parser_knows_every_documented_command() -> None:
    parser = build_parser()
    args = parser.parse_args(["run", "--workdir", "w", "--no-serve", "--skip-existing", "--epochs", "2"])
    assert args.no_serve and args.skip_existing and args.epochs == 2


def test_evaluate_olga_bad_folder_and_queries_file(tmp_path: Path) -> None:
    _one_line_error(_run("evaluate", "olga", str(tmp_path / "nope"), "--out", str(tmp_path / "r")), 1, "no such folder")
    (tmp_path / "olga").mkdir()
    _one_line_error(
        _run("evaluate", "olga", str(tmp_path / "olga"), "--out", str(tmp_path / "r")), 1, "artists.csv: missing"
    )


def test_run_fails_fast_on_a_taken_port(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _run("run", "--workdir", str(tmp_path / "w"), "--port", str(port))
    _one_line_error(proc, 1, f"cannot listen on 127.0.0.1:{port}")
    assert not (tmp_path / "w" / "model").exists()  # nothing was built


def test_serve_on_a_damaged_write_database_is_one_line(built: Built, tmp_path: Path) -> None:
    db = tmp_path / "writes.sqlite3"
    db.write_bytes(b"this is not an SQLite database, just bytes" * 100)
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "serve", "--model", str(built.model), "--index", str(built.index)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CMAR_WRITES_DB": str(db), "CMAR_PORT": "0"},
    )
    _one_line_error(proc, 1, "writes.sqlite3: cannot open the write database")
    assert db.read_bytes().startswith(b"this is not")  # left as it was


def test_the_command_line_builds_without_torch() -> None:
    code = "import sys, cli.main; cli.main.build_parser(); assert 'torch' not in sys.modules, 'torch imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
