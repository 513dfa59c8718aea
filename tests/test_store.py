import multiprocessing as mp
import sqlite3

import pytest
from sqlalchemy import func, select

from engine.store import SCHEMA_VERSION, Artwork, Database, SchemaError


def test_new_database_is_wal_and_versioned(db_path):
    db = Database(db_path)
    con = sqlite3.connect(db_path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"artworks", "clips", "jobs"} <= tables
    db.close()


def test_write_block_is_all_or_nothing(db_path):
    db = Database(db_path)
    with pytest.raises(RuntimeError):
        with db.write() as s:
            s.add(Artwork(path="a.png", image_hash="0" * 64))
            s.flush()
            raise RuntimeError("crash mid-transaction")
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Artwork)) == 0


def test_newer_schema_is_refused(db_path):
    Database(db_path).close()
    con = sqlite3.connect(db_path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(SchemaError, match=str(db_path)):
        Database(db_path)


def _writer(path, n, start):
    db = Database(path)
    start.wait()
    for i in range(n):
        db.run_write(lambda s, i=i: s.add(Artwork(path=f"{mp.current_process().name}-{i}.png")))
    db.close()


def test_two_processes_write_at_once_without_lock_errors(db_path):
    Database(db_path).close()
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(db_path, 100, start), name=f"p{k}") for k in range(2)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    db = Database(db_path)
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Artwork)) == 200
