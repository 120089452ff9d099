"""Output paths: cmar replaces only what it made itself.

Every folder cmar writes names its kind in a `manifest.json` ("catalog", "checkpoint",
"model", "index", "report", "workdir") and the entries it wrote (`files` of a model or
index manifest, `written` of the others). An output path may be new, an empty folder, or an
earlier cmar folder of the same kind holding nothing but what cmar wrote there; anything
else (a user's file, a folder holding a user's notes, a cmar folder of another kind, a cmar
folder into which the user put files of their own) is refused with a CmarError unless the
caller passes `overwrite=True` (the CLI's `--overwrite`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.errors import CmarError

MANIFEST_FILE = "manifest.json"
KINDS = ("catalog", "checkpoint", "model", "index", "report", "workdir", "track_model", "map")
STAGES = ("catalog", "checkpoint", "model", "index", "map")  # a workdir's folders, each named for its kind
_DATABASE = ("writes.sqlite3", "writes.sqlite3-wal", "writes.sqlite3-shm", "writes.sqlite3.served.json")


def _manifest(path: Path) -> dict[str, Any] | None:
    try:
        raw = json.loads((path / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def _entries(path: Path) -> set[str]:
    try:
        return {p.name for p in path.iterdir()}
    except OSError:
        return set()


def _legacy_kind(path: Path, entries: set[str]) -> str | None:
    """The kind of a folder written before manifests named kinds, from its files alone."""
    # Catalogues and checkpoints are never recognised by their files: a catalogue made by hand
    # looks exactly like one cmar wrote. Such folders are replaced only with --overwrite.
    stages = entries & set(STAGES)
    own_stages = all(folder_kind(path / s) == s for s in stages)  # each stage folder is cmar's own
    if stages and entries <= set(STAGES) | set(_DATABASE) and own_stages:
        return "workdir"
    return None


def folder_kind(path: Path) -> str | None:
    """The kind of cmar folder `path` is, from its manifest; None if none.

    An older workdir (before manifests) is recognised if it holds only stage folders that are
    cmar's own and the write database.
    """
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return None
    raw = _manifest(path)
    if raw is not None:
        kind = raw.get("kind")
        return kind if kind in KINDS else None
    return _legacy_kind(path, _entries(path))


def foreign_entries(path: Path) -> list[str]:
    """Entries of a cmar folder that cmar did not write there (sorted); its manifest says which it did."""
    path = Path(path)
    entries = _entries(path)
    raw = _manifest(path)
    if raw is None:  # an older folder, recognised by its files: all of them are cmar's
        return []
    own = {MANIFEST_FILE, *raw.get("files", {}), *raw.get("written", [])}
    kind = raw.get("kind")
    if kind == "workdir":  # its stages are checked as folders of their own when they are replaced
        own |= set(STAGES) | set(_DATABASE)
    if kind == "report":  # reports are written into, never replaced whole
        return []
    return sorted(entries - own)


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
    elif path.is_dir() and not overwrite:
        entries = sorted(_entries(path))
        found = folder_kind(path)
        if entries and found != kind:
            what = f"a cmar {found} folder" if found else f"a folder that cmar did not write ({entries[0]!r}, ...)"
            raise CmarError(
                f"{path}: is {what}; refusing to replace it with a {kind} folder "
                "(choose another path, or pass --overwrite)"
            )
        foreign = foreign_entries(path) if entries else []
        if foreign:
            raise CmarError(
                f"{path}: this cmar {kind} folder also holds {len(foreign)} entr{'y' if len(foreign) == 1 else 'ies'} "
                f"cmar did not write ({', '.join(repr(f) for f in foreign[:3])}); refusing to replace it "
                "(move them out, or pass --overwrite)"
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


def record_written(path: Path) -> None:
    """Add the folder's entries to its free-form manifest as `written` (model and index manifests list `files`)."""
    raw = _manifest(path)
    if raw is None or "files" in raw:
        return
    raw["written"] = sorted(_entries(path) - {MANIFEST_FILE})
    (path / MANIFEST_FILE).write_text(json.dumps(raw, indent=2, default=str))
