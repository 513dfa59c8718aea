"""Schema versions of the store, kept in SQLite's ``PRAGMA user_version``.

A new database is created from the current models and stamped with ``LATEST``. An older one
is upgraded step by step by the functions in ``MIGRATIONS``, each in one transaction, so a
crash mid-upgrade leaves the previous version intact. Never edit a step once it has shipped:
add the next one, and update the models to match.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, text

from .models import Base


class SchemaError(RuntimeError):
    """The database cannot be used by this version of the program."""


def _add_artwork_file_inode(conn: Connection) -> None:
    """2: artworks.file_inode, so that two files swapped by name are noticed by the catalog."""
    conn.exec_driver_sql("ALTER TABLE artworks ADD COLUMN file_inode INTEGER")


def _add_service_status(conn: Connection) -> None:
    """3: service_status, where the engine service says which engine runs and why."""
    conn.exec_driver_sql(
        "CREATE TABLE service_status ("
        " service VARCHAR(32) NOT NULL PRIMARY KEY,"
        " engine VARCHAR(32) NOT NULL,"
        " model_version VARCHAR(64) NOT NULL,"
        " reason TEXT NOT NULL,"
        " worker_id VARCHAR(64) NOT NULL,"
        " started_at DATETIME NOT NULL)"
    )


def _add_clip_loop(conn: Connection) -> None:
    """4: clips.loop_start/loop_end, the clip's loop in frames (NULL: made before loops were
    stored; engine clips loop whole)."""
    conn.exec_driver_sql("ALTER TABLE clips ADD COLUMN loop_start INTEGER")
    conn.exec_driver_sql("ALTER TABLE clips ADD COLUMN loop_end INTEGER")


def _add_faults_and_conditions(conn: Connection) -> None:
    """5: jobs.faults and jobs.not_before (machine faults delay a job, never fail it), and the
    conditions table (what is wrong with the machine now, for status and health)."""
    conn.exec_driver_sql("ALTER TABLE jobs ADD COLUMN faults INTEGER NOT NULL DEFAULT 0")
    conn.exec_driver_sql("ALTER TABLE jobs ADD COLUMN not_before DATETIME")
    conn.exec_driver_sql(
        "CREATE TABLE conditions ("
        " name VARCHAR(32) NOT NULL PRIMARY KEY,"
        " message TEXT NOT NULL,"
        " worker_id VARCHAR(64) NOT NULL,"
        " started_at DATETIME NOT NULL,"
        " seen_at DATETIME NOT NULL,"
        " count INTEGER NOT NULL)"
    )


def _claim_index_in_claim_order(conn: Connection) -> None:
    """6: ix_jobs_claim on (status, priority DESC, id), the order claims take, so that a claim
    reads one index entry instead of sorting every queued job (a million queued: 1.3 s → 1 ms)."""
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_jobs_claim")
    conn.exec_driver_sql("CREATE INDEX ix_jobs_claim ON jobs (status, priority DESC, id)")


def _add_clip_files(conn: Connection) -> None:
    """7: clips.audio_sha256 and audio_size: clip audio lives in content-addressed files beside
    the database (engine/store/clip_files.py). The blobs are moved afterwards, a batch per
    transaction and restartable (``move_blobs_to_files``), not in this opening transaction:
    gigabytes of files cannot be written inside it."""
    conn.exec_driver_sql("ALTER TABLE clips ADD COLUMN audio_sha256 VARCHAR(64)")
    conn.exec_driver_sql("ALTER TABLE clips ADD COLUMN audio_size INTEGER")
    conn.exec_driver_sql("CREATE INDEX ix_clips_audio_sha256 ON clips (audio_sha256)")


def _add_catalog_problems(conn: Connection) -> None:
    """8: catalog_problems, the collection's metadata problems with file and line (curator
    panel), kept by the scanner."""
    conn.exec_driver_sql(
        "CREATE TABLE catalog_problems ("
        " id INTEGER NOT NULL PRIMARY KEY,"
        " file TEXT NOT NULL,"
        " line INTEGER,"
        " reason TEXT NOT NULL,"
        " first_seen DATETIME NOT NULL,"
        " seen_at DATETIME NOT NULL)"
    )


# Step N upgrades a database from version N-1 to N. Version 1 is the first schema; a database
# at version 0 with no tables is simply new.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    2: _add_artwork_file_inode,
    3: _add_service_status,
    4: _add_clip_loop,
    5: _add_faults_and_conditions,
    6: _claim_index_in_claim_order,
    7: _add_clip_files,
    8: _add_catalog_problems,
}

LATEST = 8


def current_version(conn: Connection) -> int:
    return int(conn.exec_driver_sql("PRAGMA user_version").scalar_one())


def _has_tables(conn: Connection) -> bool:
    tables: int = conn.exec_driver_sql(
        "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='artworks'"
    ).scalar_one()
    return tables > 0


def migrate(conn: Connection, path: str) -> int:
    """Bring the database on ``conn`` to ``LATEST``; returns the version it started at.

    ``conn`` must be inside a write (``BEGIN IMMEDIATE``) transaction, so that two processes
    starting at once do not both migrate.
    """
    version = current_version(conn)
    if version > LATEST:
        raise SchemaError(
            f"{path}: database schema version {version} is newer than this program "
            f"understands ({LATEST}); upgrade art2mus"
        )
    if version == 0:
        if _has_tables(conn):
            # Not made by any released version (which all stamp user_version): do not guess.
            raise SchemaError(
                f"{path}: the database has art2mus tables but no schema version; it was not "
                "made by a released art2mus, so it is left untouched (use another --db file)"
            )
        Base.metadata.create_all(conn)
        _stamp(conn, LATEST)
        return 0
    for step in range(version + 1, LATEST + 1):
        MIGRATIONS[step](conn)
        _stamp(conn, step)
    return version


def _stamp(conn: Connection, version: int) -> None:
    # PRAGMA takes no bound parameters; version is an int from this module.
    conn.execute(text(f"PRAGMA user_version = {int(version)}"))
