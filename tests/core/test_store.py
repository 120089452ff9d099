"""The write store: sequence numbers by index lookup, damaged rows reported, writes since a point."""

import sqlite3
from pathlib import Path

from core.store import _NEXT_SEQ, WriteStore


def test_the_next_sequence_number_is_an_index_lookup(tmp_path: Path) -> None:
    store = WriteStore(tmp_path / "w.sqlite3")
    plan = store._db.execute(f"EXPLAIN QUERY PLAN {_NEXT_SEQ}").fetchall()
    assert any("artists_seq" in str(row) for row in plan), plan  # not a scan of every stored write
    store.close()


def test_rows_that_cannot_be_read_back_are_reported_not_raised(tmp_path: Path) -> None:
    db = tmp_path / "w.sqlite3"
    store = WriteStore(db)
    for name in ("a", "b", "c", "d"):
        store.put(name, {"name": name})
    store.delete("d")
    store.close()
    con = sqlite3.connect(db)
    con.execute("UPDATE artists SET body = '[1, 2' WHERE artist_id = 'b'")
    con.execute("UPDATE artists SET seq = 'late' WHERE artist_id = 'c'")
    con.commit()
    con.close()
    store = WriteStore(db)
    writes, damaged = store.load()
    assert [(w.artist_id, w.body) for w in writes] == [("a", {"name": "a"}), ("d", None)]
    assert {(d.artist_id, d.reason.split(" ")[0]) for d in damaged} == {("b", "body"), ("c", "seq")}
    seq = store.put("e", {"name": "e"})
    assert [w.artist_id for w in store.writes_since(seq - 1)] == ["e"]
    assert [w.artist_id for w in WriteStore.read(db)] == ["a", "d", "e"]
