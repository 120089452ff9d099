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

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import CmarError

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
_LATEST = "SELECT artist_id, seq, body FROM artists ORDER BY seq"


@dataclass(frozen=True)
class Write:
    """One artist's latest write: its PUT body, or None for a delete."""

    artist_id: str
    seq: int
    body: dict[str, Any] | None


def _write(artist_id: str, seq: int, body: str | None) -> Write:
    return Write(artist_id, int(seq), None if body is None else json.loads(body))


class WriteStore:
    """The write database (thread-safe: one connection, one lock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            found = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.Error as exc:
            raise CmarError(f"{self.path}: cannot open the write database ({exc})") from None
        if found is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        elif found[0] != SCHEMA_VERSION:
            raise CmarError(f"{self.path}: write database schema {found[0]}, this version reads {SCHEMA_VERSION}")
        self._lock = threading.Lock()

    def _next_seq(self) -> int:
        row = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM artists").fetchone()
        return int(row[0])

    def put(self, artist_id: str, body: dict[str, Any]) -> int:
        """Record an artist's PUT body, durably; return its sequence number."""
        return self._write(artist_id, json.dumps(body, separators=(",", ":")))

    def delete(self, artist_id: str) -> int:
        """Record an artist's deletion, durably; return its sequence number."""
        return self._write(artist_id, None)

    def _write(self, artist_id: str, body: str | None) -> int:
        with self._lock:
            seq = self._next_seq()
            self._db.execute(
                "INSERT INTO artists VALUES (?, ?, ?, ?) ON CONFLICT(artist_id) DO UPDATE SET "
                "seq = excluded.seq, body = excluded.body, written_at = excluded.written_at",
                (artist_id, seq, body, time.time()),
            )
            return seq

    def writes(self) -> Iterator[Write]:
        """Every artist's latest write, oldest first."""
        with self._lock:
            rows = self._db.execute(_LATEST).fetchall()
        for row in rows:
            yield _write(*row)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM artists").fetchone()[0])

    @classmethod
    def read(cls, path: Path) -> list[Write]:
        """Every artist's latest write in an existing database, opened read-only (oldest first)."""
        if not Path(path).is_file():
            raise CmarError(f"{path}: no such write database")
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                rows = db.execute(_LATEST).fetchall()
        except sqlite3.Error as exc:
            raise CmarError(f"{path}: not a cmar write database ({exc})") from None
        return [_write(*row) for row in rows]

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed into the database file)."""
        with self._lock:
            self._db.close()
