"""The durable record of live writes: an SQLite database in WAL mode, replayed at start-up.

Written by the service (`service.writes`), read back by it and by `cmar catalog add-writes`.

One row per artist written through the API: its latest PUT body (name and raw modality
inputs, as JSON) or a tombstone for a DELETE, with a sequence number giving the order of
writes. A write is committed (`synchronous=FULL`: the WAL is flushed to disk) before the API
acknowledges it, so an acknowledged write survives a crash of the process or the machine.
Raw inputs, not encoded vectors, are kept, so the artists can be re-encoded by a new model
(a swap) and taken into the next offline build (`cmar catalog add-writes`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import CmarError
from core.names import artist_id_problem

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS artists (
    artist_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    body TEXT,              -- the PUT body (JSON), NULL for a deleted artist
    written_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
SCHEMA_VERSION = "1"
# The next sequence number is MAX(seq) + 1: with this index that is one lookup, not a scan of
# every stored write (which made N writes cost O(N^2)). Made with the first write access.
SEQ_INDEX = "CREATE INDEX IF NOT EXISTS artists_seq ON artists(seq)"
# Integers only (SQLite sorts text above every number): a damaged text seq cannot derail the order.
_NEXT_SEQ = "SELECT COALESCE(MAX(seq), 0) + 1 FROM artists WHERE seq <= 9223372036854775807"
_ROWS = "SELECT rowid, artist_id, seq, body FROM artists"
_ROWS_SINCE = "SELECT rowid, artist_id, seq, body FROM artists WHERE seq > ?"


@dataclass(frozen=True)
class Write:
    """One artist's latest write: its PUT body, or None for a delete."""

    artist_id: str
    seq: int
    body: dict[str, Any] | None


@dataclass(frozen=True)
class Damaged:
    """A stored row that cannot be read back: where it is and why."""

    rowid: int
    artist_id: str
    reason: str


class WritesUnavailable(Exception):
    """The write database cannot store a write now; the message says why (the API answers 503)."""


def _parse(rowid: int, artist_id: object, seq: object, body: object) -> Write | Damaged:
    """One row as a Write, or as Damaged with the reason."""
    name = artist_id if isinstance(artist_id, str) else repr(artist_id)
    if not isinstance(artist_id, str) or not artist_id:
        return Damaged(rowid, name, "artist_id is not a string")
    problem = artist_id_problem(artist_id)
    if problem is not None:
        return Damaged(rowid, name, problem)
    if not isinstance(seq, int) or isinstance(seq, bool):
        return Damaged(rowid, name, f"seq {seq!r} is not an integer")
    if body is None:
        return Write(artist_id, seq, None)
    try:
        parsed = json.loads(body) if isinstance(body, str | bytes) else None
    except (ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        return Damaged(rowid, name, f"body is not valid JSON ({reason})")
    if not isinstance(parsed, dict):
        return Damaged(rowid, name, "body is not a JSON object")
    return Write(artist_id, seq, parsed)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class WriteStore:
    """The write database (thread-safe: one connection, one lock).

    It watches its own files: a write is acknowledged only if, after the commit, the database
    file and its WAL are still the ones opened (not removed or replaced), since only those are
    replayed at start-up. `problem` says why writes are unavailable (None when they are not):
    a database opened read-only, or one whose files were removed or replaced (both until a
    restart), or the last write's storage error (a full disk, cleared by the next write that
    succeeds).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.problem: str | None = None
        self._fatal = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and not {"artists", "meta"} <= tables:  # someone else's database: change nothing
                self._db.close()
                raise CmarError(
                    f"{self.path}: an SQLite database that is not a cmar write database (tables "
                    f"{', '.join(sorted(tables)[:3])}); left as it is (CMAR_WRITES_DB names another file?)"
                )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            found = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise CmarError(f"{self.path}: cannot open the write database ({exc})") from None
        if found is not None and found[0] != SCHEMA_VERSION:
            raise CmarError(f"{self.path}: write database schema {found[0]}, this version reads {SCHEMA_VERSION}")
        self._lock = threading.Lock()
        try:  # a real write: a read-only or full database says so now, not at the first PUT
            self._db.execute(SEQ_INDEX)
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('opened_at', ?)", (str(time.time()),))
        except sqlite3.Error as exc:
            if found is None:
                raise CmarError(f"{self.path}: cannot initialise the write database ({exc})") from None
            self.problem = f"the write database {self.path} cannot be written ({exc}); writes are refused"
            self._fatal = True
            log.warning("%s", self.problem)
        self._files = {p: _identity(p) for p in (self.path, Path(f"{self.path}-wal"))}

    def _check_files(self) -> None:
        """Raise WritesUnavailable (for good) if the database or its WAL is not the file opened."""
        for path, opened in self._files.items():
            if opened is not None and _identity(path) != opened:
                self.problem = (
                    f"the write database file {path} was removed or replaced while the service ran; "
                    "writes are refused until a restart (writes acknowledged before are in the file it opened)"
                )
                self._fatal = True
                log.error("%s", self.problem)
                raise WritesUnavailable(self.problem)

    def put(self, artist_id: str, body: dict[str, Any]) -> int:
        """Record an artist's PUT body, durably; return its sequence number (WritesUnavailable if it cannot)."""
        return self._write(artist_id, json.dumps(body, separators=(",", ":")))

    def delete(self, artist_id: str) -> int:
        """Record an artist's deletion, durably; return its sequence number (WritesUnavailable if it cannot)."""
        return self._write(artist_id, None)

    def _write(self, artist_id: str, body: str | None) -> int:
        with self._lock:
            if self._fatal:
                raise WritesUnavailable(self.problem or "writes are unavailable")
            self._check_files()
            try:
                self._db.execute("BEGIN IMMEDIATE")
                seq = int(self._db.execute(_NEXT_SEQ).fetchone()[0])
                self._db.execute(
                    "INSERT INTO artists VALUES (?, ?, ?, ?) ON CONFLICT(artist_id) DO UPDATE SET "
                    "seq = excluded.seq, body = excluded.body, written_at = excluded.written_at",
                    (artist_id, seq, body, time.time()),
                )
                self._db.execute("COMMIT")
            except (sqlite3.Error, TypeError, ValueError) as exc:
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                self.problem = f"the write database {self.path} cannot store writes ({exc})"
                log.error("write of %r not stored: %s", artist_id, self.problem)
                raise WritesUnavailable(self.problem) from None
            self._check_files()  # committed into a file start-up will not read: not acknowledged
            self.problem = None
            return seq

    def load(self) -> tuple[list[Write], list[Damaged]]:
        """Every artist's latest write, oldest first, and the rows that cannot be read back."""
        with self._lock:
            rows = self._db.execute(_ROWS).fetchall()
        return _split(rows)

    def writes_since(self, seq: int) -> list[Write]:
        """The readable writes stored after sequence number `seq`, oldest first."""
        with self._lock:
            rows = self._db.execute(_ROWS_SINCE, (seq,)).fetchall()
        return _split(rows)[0]

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM artists").fetchone()[0])

    @classmethod
    def read(cls, path: Path) -> list[Write]:
        """Every artist's latest readable write in an existing database, opened read-only (oldest first)."""
        if not Path(path).is_file():
            raise CmarError(f"{path}: no such write database")
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                rows = db.execute(_ROWS).fetchall()
        except sqlite3.Error as exc:
            raise CmarError(f"{path}: not a cmar write database ({exc})") from None
        writes, damaged = _split(rows)
        for bad in damaged:
            log.warning("%s: row %d (artist %r) skipped: %s", path, bad.rowid, bad.artist_id, bad.reason)
        return writes

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed into the database file)."""
        with self._lock:
            self._db.close()


def _split(rows: list[tuple[Any, ...]]) -> tuple[list[Write], list[Damaged]]:
    parsed = [_parse(*row) for row in rows]
    good = [p for p in parsed if isinstance(p, Write)]
    good.sort(key=lambda w: w.seq)
    return good, [p for p in parsed if isinstance(p, Damaged)]
