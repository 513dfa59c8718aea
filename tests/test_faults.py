"""Faults versus failures, conditions and the log (fast, in-process; real SQLite files)."""

from __future__ import annotations

import errno
import logging
import sqlite3

from sqlalchemy.exc import DatabaseError, OperationalError

from engine.log_format import JournalFormatter, under_journald
from engine.store import Database
from engine.store.conditions import Conditions, active_conditions
from engine.store.faults import Backoff, Fault, RepeatFilter, classify


def _op(text: str) -> OperationalError:
    return OperationalError("INSERT ...", {}, sqlite3.OperationalError(text))


def test_machine_faults_are_told_from_the_artworks_failures():
    assert classify(_op("database or disk is full")) == Fault.DISK_FULL
    assert classify(OSError(errno.ENOSPC, "No space left on device")) == Fault.DISK_FULL
    assert classify(_op("attempt to write a readonly database")) == Fault.DB_READONLY
    assert classify(_op("database is locked")) == Fault.DB_BUSY
    assert classify(_op("disk I/O error")) == Fault.DB_UNAVAILABLE
    damaged = DatabaseError("SELECT", {}, sqlite3.DatabaseError("database disk image is malformed"))
    assert classify(damaged) == Fault.DB_DAMAGED
    assert classify(MemoryError()) == Fault.OUT_OF_MEMORY
    wrapped = RuntimeError("cannot write the clip")  # a fault wrapped by the code that met it
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert classify(wrapped) == Fault.DISK_FULL
    # The artwork's own: a bad image, an engine error on it. These count attempts.
    assert classify(ValueError("image file is truncated")) is None
    assert classify(FileNotFoundError(errno.ENOENT, "gone")) is None


def test_backoff_doubles_up_to_its_cap_and_resets():
    b = Backoff(base=1.0, cap=8.0)
    delays = [b.next_delay() for _ in range(6)]
    assert 0.75 <= delays[0] <= 1.25 and 1.5 <= delays[1] <= 2.5 and all(d <= 10 for d in delays)
    assert delays[-1] >= 6
    b.reset()
    assert b.next_delay() <= 1.25


def test_repeats_are_held_back_and_counted():
    f = RepeatFilter(every=60.0)
    assert f.allow("x") == (True, 0)
    assert [f.allow("x")[0] for _ in range(5)] == [False] * 5
    assert f.allow("y") == (True, 0)


def test_a_condition_logs_once_when_it_starts_and_once_when_it_ends(db_path, caplog):
    db = Database(db_path)
    conditions = Conditions(db)
    caplog.set_level(logging.INFO, logger="engine.conditions")
    for _ in range(100):
        conditions.start(Fault.DISK_FULL, f"{db_path}: database or disk is full")
    (cond,) = active_conditions(db)  # another process (status, /health) reads this
    assert cond.name == "disk-full" and str(db_path) in cond.message and cond.started_at <= cond.seen_at
    assert conditions.end(Fault.DISK_FULL) and not conditions.end(Fault.DISK_FULL)
    assert active_conditions(db) == []
    levels = [(r.levelno, r.getMessage().split(":")[0]) for r in caplog.records]
    assert levels == [
        (logging.WARNING, "condition disk-full started"),
        (logging.INFO, "condition disk-full ended after 0 s (met 100 times)"),
    ]


def test_under_journald_lines_carry_their_priority(tmp_path, monkeypatch):
    log_file = open(tmp_path / "stderr", "w")  # noqa: SIM115 - stands for the journal's stream
    st = __import__("os").fstat(log_file.fileno())
    monkeypatch.setattr("sys.stderr", log_file)
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    assert under_journald()
    record = logging.LogRecord(
        "engine.store", logging.ERROR, __file__, 1, "database %s is damaged", ("x",), None
    )
    assert JournalFormatter().format(record) == "<3>engine.store: database x is damaged"
    monkeypatch.setenv("JOURNAL_STREAM", "0:0")
    assert not under_journald()
    log_file.close()


def test_a_lost_wal_loses_no_clip_the_worker_stored(tmp_path, demo_dir):
    """The worker checkpoints after each job: the clip is in the database file itself."""
    import shutil

    from engine.catalog.scanner import scan_collection
    from engine.config import default_config
    from engine.engines.default.engine import DefaultEngine
    from engine.worker import Worker

    folder = tmp_path / "collection"
    folder.mkdir()
    shutil.copy(demo_dir / "harvest-at-la-crau.png", folder)
    db_path = tmp_path / "art2mus.db"
    db = Database(db_path)
    scan_collection(db, folder, default_config().catalog)
    config = default_config()
    config.collection.path, config.engine.duration = folder, 5.0
    reader = sqlite3.connect(db_path)  # another process keeps the WAL from being removed at close
    reader.execute("SELECT 1").fetchall()
    worker = Worker(db, DefaultEngine(), config)
    worker.enqueue_missing()
    assert worker.run_until_idle().done == 1
    copy = tmp_path / "copy.db"
    shutil.copy(db_path, copy)  # the file as it is on disk, without its -wal
    reader.close()
    db.close()
    con = sqlite3.connect(copy)
    assert con.execute("SELECT count(*) FROM clips").fetchone() == (worker.candidates,)
    con.close()


def test_a_broken_file_with_a_future_mtime_is_judged_not_waited_for(tmp_path, demo_dir):
    """A camera with a wrong clock: the file is not "still being copied" forever."""
    import os
    import time

    from engine.catalog.scanner import scan_collection
    from engine.config import default_config

    folder = tmp_path / "collection"
    folder.mkdir()
    broken = folder / "broken.png"
    broken.write_bytes((demo_dir / "harvest-at-la-crau.png").read_bytes()[:3000])
    future = time.time_ns() + 10 * 365 * 86400 * 10**9
    os.utime(broken, ns=(future, future))
    summary = scan_collection(Database(tmp_path / "art2mus.db"), folder, default_config().catalog)
    assert summary.invalid == 1 and summary.growing == []


def test_conditions_of_a_process_that_ended_are_forgotten(db_path):
    import socket

    from engine.store.conditions import forget_ended
    from engine.store.models import Condition

    db = Database(db_path)
    host = socket.gethostname()
    db.run_write(lambda s: s.add(Condition(name="disk-full", message="m", worker_id=f"{host}:999999999")))
    db.run_write(lambda s: s.add(Condition(name="database-busy", message="m", worker_id="elsewhere:1")))
    assert forget_ended(db, lambda worker_id: False) == 1
    assert [c.name for c in active_conditions(db)] == ["database-busy"]  # another machine's: kept


def test_a_fault_at_the_write_boundary_costs_no_attempt_in_a_one_shot_run(tmp_path, demo_dir, caplog):
    """`pregenerate` (run_until_idle) meets a full disk once: it waits, retries, the job is done
    with one attempt, and the log has one WARNING and one INFO."""
    import shutil

    from engine.catalog.scanner import scan_collection
    from engine.config import default_config
    from engine.engines.default.engine import DefaultEngine
    from engine.store import JobStatus
    from engine.store.clips import ClipStore
    from engine.store.jobs import JobQueue
    from engine.worker import Worker

    folder = tmp_path / "collection"
    folder.mkdir()
    shutil.copy(demo_dir / "harvest-at-la-crau.png", folder)
    db = Database(tmp_path / "art2mus.db")
    scan_collection(db, folder, default_config().catalog)
    config = default_config()
    config.collection.path, config.engine.duration, config.engine.max_attempts = folder, 5.0, 1
    worker = Worker(db, DefaultEngine(), config)
    store = ClipStore(db)
    real_put, calls = store.put, []

    def put_on_a_full_disk(**kw):
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_put(**kw)

    worker.clips.put = put_on_a_full_disk
    worker.enqueue_missing()
    caplog.set_level(logging.INFO, logger="engine.conditions")
    summary = worker.run_until_idle()
    # One refused write, then each candidate stored.
    assert (summary.done, summary.failed, len(calls)) == (1, 0, 1 + worker.candidates)
    job = JobQueue(db).get(1)
    assert job.status == JobStatus.DONE and (job.attempts, job.faults) == (1, 1)
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.INFO]
