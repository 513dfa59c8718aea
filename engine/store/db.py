"""Opening the shared SQLite database: WAL mode, write transactions that wait, migrations.

The engine service and the kiosk open the same file at once. WAL lets readers go on while
one process writes. Writes take the lock up front (``BEGIN IMMEDIATE``) and wait for it
(``busy_timeout``), so a transaction never fails half-way with "database is locked" when it
tries to upgrade a read lock; a write that still times out is retried with back-off.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, CursorResult, Delete, Engine, Update, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from .migrations import migrate

log = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000
WRITE_RETRIES = 5


class StoreError(RuntimeError):
    """The database file cannot be opened or used; the message names the file."""


def _is_busy(exc: OperationalError) -> bool:
    msg = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    return "locked" in msg or "busy" in msg


class Database:
    """The store's database file, with sessions for reading and for writing."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create its folder: {exc.strerror}") from None
        self.engine: Engine = create_engine(
            f"sqlite:///{self.path}",
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        event.listen(self.engine, "connect", _on_connect)
        event.listen(self.engine, "begin", _on_begin)
        self._writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self._writer, expire_on_commit=False)
        try:
            with self._writer.begin() as conn:
                self.migrated_from = migrate(conn, str(self.path))
        except OperationalError as exc:
            raise StoreError(f"{self.path}: cannot open the database: {exc.orig}") from None

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading: a consistent snapshot that never blocks the writer."""
        with self._read_sessions() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose changes commit together at the end of the block, or not at all."""
        with self._write_sessions() as session, session.begin():
            yield session

    def run_write(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` in a write transaction, retrying if the lock stays busy."""
        for attempt in range(WRITE_RETRIES):
            try:
                with self.write() as session:
                    return fn(session)
            except OperationalError as exc:
                if not _is_busy(exc) or attempt == WRITE_RETRIES - 1:
                    raise
                delay = (0.05 * 2**attempt) * (1 + random.random())
                log.warning("%s: database busy, retrying write in %.2f s", self.path, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def run_change(self, stmt: Update | Delete) -> int:
        """Run one UPDATE or DELETE as :meth:`run_write` does; returns how many rows it changed."""
        # Session.execute is typed as returning a plain Result; for an UPDATE or DELETE without
        # RETURNING it is a CursorResult, which has the row count.
        return self.run_write(lambda s: cast("CursorResult[Any]", s.execute(stmt)).rowcount)

    def close(self) -> None:
        self.engine.dispose()


def _on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own handling defers it).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # NORMAL is durable across application crashes in WAL mode; only a power cut can lose
    # the last transactions, never corrupt the file.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")
