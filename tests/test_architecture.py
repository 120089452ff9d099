"""The architecture is a checked contract: import-linter's layers and forbidden imports (pyproject.toml)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "core",
    "catalog",
    "inference",
    "model_export",
    "index_build",
    "pipeline",
    "service",
    "evaluation",
    "bench",
    "cli",
)


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"]
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold() -> None:
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout[-3000:]  # the report names every broken import chain


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "core" / "upward.py").write_text("import service.app\n")  # core may import nothing above it
    done = _lint(tmp_path)
    assert done.returncode == 1 and "core.upward -> service.app" in done.stdout, done.stdout[-3000:]
