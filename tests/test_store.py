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

    def crash() -> None:
        with db.write() as s:
            s.add(Artwork(path="a.png", image_hash="0" * 64))
            s.flush()
            raise RuntimeError("crash mid-transaction")

    with pytest.raises(RuntimeError):
        crash()
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


@pytest.mark.slow
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


def _schema(path) -> dict[str, set[str]]:
    con = sqlite3.connect(path)
    tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    schema = {t: {r[1] for r in con.execute(f"PRAGMA table_info({t})")} for t in tables}
    con.close()
    return schema


def _make_version_1(path) -> None:
    """Turn a current database into what version 1 of the schema was."""
    con = sqlite3.connect(path)
    con.execute("ALTER TABLE artworks DROP COLUMN file_inode")  # added by step 2
    con.execute("DROP TABLE service_status")  # added by step 3
    con.execute("ALTER TABLE clips DROP COLUMN loop_start")  # added by step 4
    con.execute("ALTER TABLE clips DROP COLUMN loop_end")
    con.execute("ALTER TABLE jobs DROP COLUMN faults")  # added by step 5
    con.execute("ALTER TABLE jobs DROP COLUMN not_before")
    con.execute("DROP TABLE conditions")
    con.execute("DROP INDEX ix_clips_audio_sha256")  # added by step 7
    con.execute("ALTER TABLE clips DROP COLUMN audio_sha256")
    con.execute("ALTER TABLE clips DROP COLUMN audio_size")
    con.execute("DROP INDEX ix_jobs_claim")  # made in claim order by step 6
    con.execute("CREATE INDEX ix_jobs_claim ON jobs (status, priority, id)")
    con.execute("DROP TABLE catalog_problems")  # added by step 8
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()


def test_version_1_database_is_migrated_with_its_rows(tmp_path, db_path):
    from engine.store import Clip, Job

    fresh = tmp_path / "fresh.db"
    Database(fresh).close()
    db = Database(db_path)
    with db.write() as s:
        art = Artwork(path="a.png", image_hash="a" * 64, title="Kept")
        s.add(art)
        s.flush()
        s.add(
            Clip(
                image_hash="a" * 64,
                artwork_id=art.id,
                engine="default",
                model_version="m",
                params_hash="p",
                duration=5.0,
                sample_rate=48000,
                audio=b"fLaC",
            )
        )
        s.add(Job(kind="pregenerate", artwork_id=art.id, image_hash="a" * 64))
    db.close()
    _make_version_1(db_path)

    db = Database(db_path)
    assert db.migrated_from == 1
    assert _schema(db_path) == _schema(fresh)  # the migrated schema is the current one
    with db.read() as s:
        assert s.scalar(select(Artwork.title)) == "Kept"
        assert s.scalar(select(func.count()).select_from(Clip)) == 1
        assert s.scalar(select(func.count()).select_from(Job)) == 1


def test_statuses_and_kinds_are_stored_as_their_plain_values(db_path):
    """The StrEnum columns keep the strings (and the schema) the plain String columns had, so
    databases of earlier versions read back as enum members without a migration."""
    from engine.store import ArtworkStatus, Job, JobKind, JobStatus
    from engine.store.jobs import JobQueue

    db = Database(db_path)
    with db.write() as s:
        s.add(Artwork(path="a.png", image_hash="a" * 64, status=ArtworkStatus.MISSING))
    jobs = JobQueue(db)
    jobs.enqueue(JobKind.REGENERATE, artwork_id=None, image_hash="a" * 64, engine="", max_attempts=1)
    assert jobs.fail(jobs.claim("w").id, "boom") is JobStatus.FAILED
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT status FROM artworks").fetchone() == ("missing",)
    assert con.execute("SELECT kind, status FROM jobs").fetchone() == ("regenerate", "failed")
    schema = con.execute("SELECT sql FROM sqlite_master WHERE name = 'jobs'").fetchone()[0]
    assert "status VARCHAR(16) NOT NULL" in schema and "CHECK" not in schema
    # A row written as plain strings (an earlier version, or the kiosk's raw SQL) reads back
    # as enum members.
    con.execute("UPDATE jobs SET status = 'queued', kind = 'visitor'")
    con.commit()
    con.close()
    with db.read() as s:
        job = s.scalars(select(Job)).one()
        artwork = s.scalars(select(Artwork)).one()
    assert job.status is JobStatus.QUEUED and job.kind is JobKind.VISITOR
    assert artwork.status is ArtworkStatus.MISSING
    db.close()


def test_engine_status_is_recorded_and_replaced(db_path):
    from engine.store.status import read_engine, record_engine

    db = Database(db_path)
    assert read_engine(db) is None
    record_engine(db, "default", "v1", "art2mus: model.safetensors is missing; default engine runs")
    record_engine(db, "art2mus", "abc", "Art2Mus engine on cuda:0")
    status = read_engine(Database(db_path))
    assert (status.engine, status.model_version, status.reason) == (
        "art2mus",
        "abc",
        "Art2Mus engine on cuda:0",
    )
