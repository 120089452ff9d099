"""Output paths: cmar replaces only what it made itself.

Every folder cmar writes names its kind in a `manifest.json` ("catalog", "checkpoint",
"model", "index", "report", "workdir"). An output path may be new, an empty folder, or an
earlier cmar folder of the same kind; anything else (a user's file, a folder holding a
user's notes, a cmar folder of another kind) is refused with a CmarError unless the caller
passes `overwrite=True` (the CLI's `--overwrite`).
"""

from __future__ import annotations

import json
from pathlib import Path

from core.errors import CmarError

MANIFEST_FILE = "manifest.json"
KINDS = ("catalog", "checkpoint", "model", "index", "report", "workdir")


_WORKDIR_ENTRIES = {
    "catalog",
    "checkpoint",
    "model",
    "index",
    "writes.sqlite3",
    "writes.sqlite3-wal",
    "writes.sqlite3-shm",
}


def folder_kind(path: Path) -> str | None:
    """The kind of cmar folder `path` is, from its manifest; None if it is not one.

    Folders written before manifests named every kind are recognised by their files alone:
    a catalogue holds only Parquet files, artists.parquet among them; a checkpoint holds
    checkpoint.pt and train.json; a workdir holds only the stages' folders and the write database.
    """
    path = Path(path)
    try:
        raw = json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raw = None
    if raw is not None:
        kind = raw.get("kind") if isinstance(raw, dict) else None
        return kind if kind in KINDS else None
    try:
        entries = {p.name for p in path.iterdir()}
    except OSError:
        return None
    if "artists.parquet" in entries and all(e.endswith(".parquet") for e in entries):
        return "catalog"
    if {"checkpoint.pt", "train.json"} <= entries:
        return "checkpoint"
    if entries and entries <= _WORKDIR_ENTRIES:
        return "workdir"
    return None


def claim_output(path: Path, kind: str, overwrite: bool = False) -> None:
    """Check that a `kind` folder may be written at `path`, and that its parent can be made.

    Raises CmarError naming the path and what is there. Nothing is deleted here.
    """
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        if not overwrite:
            raise CmarError(
                f"{path}: exists and is not a folder; refusing to replace it with a {kind} folder "
                "(choose another path, or pass --overwrite)"
            )
    elif path.is_dir():
        found = folder_kind(path)
        if found != kind and not overwrite:
            try:
                entries = sorted(p.name for p in path.iterdir())
            except OSError as exc:
                raise CmarError(f"{path}: cannot read the folder ({exc.strerror})") from None
            if entries:
                what = f"a cmar {found} folder" if found else f"a folder that cmar did not write ({entries[0]!r}, ...)"
                raise CmarError(
                    f"{path}: is {what}; refusing to replace it with a {kind} folder "
                    "(choose another path, or pass --overwrite)"
                )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CmarError(f"{path}: cannot create its parent folder ({exc.strerror or exc})") from None


def mark_folder(path: Path, kind: str, **fields: object) -> None:
    """Make `path` a folder and write its manifest naming `kind` (for folders with no manifest of their own)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / MANIFEST_FILE).write_text(json.dumps({"kind": kind, **fields}, indent=2, default=str))
    except OSError as exc:
        raise CmarError(f"{path}: cannot write ({exc.strerror or exc})") from None
