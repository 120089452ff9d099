"""File helpers: sha256 of a file and folders written atomically."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import CmarError
from core.outputs import claim_output, record_written

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def atomic_folder(target: Path, kind: str, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder of `target`; rename it into place if the block succeeds.

    Readers never see a half-written folder: either the old one or the complete new one.
    On failure the temporary folder is removed and `target` is left untouched. `target` may
    only replace an earlier cmar folder of the same `kind` (`core.outputs.claim_output`),
    checked before the block runs and again before the rename; CmarError otherwise.
    """
    target = Path(target)
    claim_output(target, kind, overwrite)
    try:
        tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    except OSError as exc:
        raise CmarError(f"{target}: cannot create a folder beside it ({exc.strerror or exc})") from None
    try:
        yield tmp
        record_written(tmp)  # what cmar wrote, so that a later run knows what else is there
        claim_output(target, kind, overwrite)  # the path may have changed while the block ran
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if target.exists() or target.is_symlink():
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        target.rename(old)
    tmp.rename(target)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
