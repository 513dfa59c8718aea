"""Opening the shared SQLite database: WAL mode, write transactions that wait, migrations.

The engine service and the kiosk open the same file at once. WAL lets readers go on while
one process writes. Writes take the lock up front (``BEGIN IMMEDIATE``) and wait for it
(``busy_timeout``), so a transaction never fails half-way with "database is locked" when it
tries to upgrade a read lock; a write that still times out is retried with back-off.

Healing (engine/store/health.py): a file that SQLite calls damaged, at start or later, is moved
aside and a new one made in its place; every process notices the new file by its inode and
reconnects. After each job the worker checkpoints the WAL into the database file, so a lost
``-wal`` loses at most the work in hand.

A ``-wal`` deleted while processes use it (by hand, or by a cleaner) splits them: those that
had it open go on writing into the deleted file, and a connection opened since finds a new,
empty ``-wal`` that disagrees with the shared index, so its writes fail ("disk I/O error").
Each process notices when it holds a deleted ``-wal`` of its database (Linux: /proc/self/fd),
copies what is in it into the database file (a TRUNCATE checkpoint) and reconnects; the others
retry their writes until then. Nothing committed is lost.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, CursorResult, Delete, Engine, Update, create_engine, event
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from .health import CheckLevel, heal_if_damaged, heal_lock, set_aside
from .migrations import migrate

log = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000
WRITE_RETRIES = 5
# How often a process looks whether it holds a deleted -wal, and how long a write that fails
# with "disk I/O error" is retried (the processes holding the deleted -wal notice it meanwhile).
WAL_CHECK_SECONDS = 2.0
IO_RETRY_SECONDS = 15.0


class StoreError(RuntimeError):
    """The database file cannot be opened or used; the message names the file."""


def _fault_text(exc: DatabaseError) -> str:
    msg = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    for part in ("locked", "busy", "disk i/o error", "malformed", "not a database"):
        if part in msg:
            return part
    return ""


def _is_busy(exc: OperationalError) -> bool:
    return _fault_text(exc) in ("locked", "busy")


def _is_io_error(exc: OperationalError) -> bool:
    return _fault_text(exc) == "disk i/o error"


def _holds_deleted(path: Path) -> bool:
    """Whether this process has ``path`` open although it was deleted (Linux; else False)."""
    deleted = f"{path} (deleted)"
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == deleted:
                return True
        except OSError:
            continue
    return False


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


class Database:
    """The store's database file, with sessions for reading and for writing."""

    def __init__(self, path: str | Path, *, check: str = CheckLevel.OPEN, heal: bool = True):
        """Open (creating or upgrading) the database at ``path``.

        ``check`` is how thoroughly the file is checked first (``CheckLevel``: the engine
        service runs a quick check); with ``heal`` a damaged file is set aside and a new one
        made, else opening it raises :class:`StoreError`.
        """
        self.path = Path(path).expanduser()
        self.heal_enabled = heal
        self._wal = Path(os.path.abspath(self.path) + "-wal")
        self._wal_checked = time.monotonic()
        #: Where damaged files were moved during this object's life (newest last).
        self.set_aside: list[Path] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create its folder: {exc.strerror}") from None
        if heal:
            self._note_aside(heal_if_damaged(self.path, check))
        self._open()

    def _open(self) -> None:
        self.engine: Engine = create_engine(
            f"sqlite:///{self.path}",
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
        event.listen(self.engine, "connect", _on_connect)
        event.listen(self.engine, "begin", _on_begin)
        self._writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        self._read_sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self._writer, expire_on_commit=False)
        tried = _inode(self.path)
        try:
            self._migrate()
        except OperationalError as exc:
            if _fault_text(exc) in ("malformed", "not a database") and self._heal_now(str(exc.orig), tried):
                return self._open()
            # The driver's error stays the cause, so a command can say the fault in plain words.
            raise StoreError(f"{self.path}: cannot open the database: {exc.orig}") from exc
        except DatabaseError as exc:  # damage found by opening itself (e.g. PRAGMA journal_mode)
            if self._heal_now(str(exc.orig), tried):
                return self._open()
            raise StoreError(f"{self.path}: the database is damaged: {exc.orig}") from None
        self._inode = _inode(self.path)

    def _migrate(self) -> None:
        """Bring the schema up to date; "disk I/O error" (a -wal deleted while other processes
        still hold it) is retried while they notice and recover it."""
        deadline = time.monotonic() + IO_RETRY_SECONDS
        while True:
            try:
                with self._writer.begin() as conn:
                    self.migrated_from = migrate(conn, str(self.path))
                return
            except OperationalError as exc:
                if not _is_io_error(exc) or time.monotonic() >= deadline:
                    raise
                self.engine.dispose()
                time.sleep(0.2 * (1 + random.random()))

    def _note_aside(self, aside: Path | None) -> None:
        if aside is not None:
            self.set_aside.append(aside)

    def _heal_now(self, problem: str, tried_inode: int | None) -> bool:
        """Set the file aside after opening it found damage; True to open again. False when
        healing is off, or after a few tries (do not loop on a disk that damages every file)."""
        self.engine.dispose()
        if not self.heal_enabled or len(self.set_aside) >= 3:
            return False
        try:
            with heal_lock(self.path):
                # Another process may have replaced the file while this one waited: open that.
                if _inode(self.path) == tried_inode and tried_inode is not None:
                    self._note_aside(set_aside(self.path, problem))
        except OSError as exc:
            log.error("database %s is damaged but cannot be moved aside: %s", self.path, exc.strerror or exc)
            return False
        return True

    def heal(self, problem: str) -> bool:
        """After a "malformed" error in use: check the file fully; if damaged, set it aside and
        make a new one (True: the caller rebuilds the catalog). False when the file is sound."""
        from .health import check_file

        if not self.heal_enabled:
            return False
        if check_file(self.path, CheckLevel.QUICK) is None:
            log.warning("database %s reported %r but its check finds it sound", self.path, problem)
            return False
        self.engine.dispose()
        self._note_aside(heal_if_damaged(self.path, CheckLevel.QUICK))
        self._open()
        return True

    def integrity_check(self) -> str | None:
        """Run SQLite's full integrity check; the first problem, or None when the file is sound."""
        from .health import check_file

        return check_file(self.path, CheckLevel.FULL, timeout_s=BUSY_TIMEOUT_MS / 1000)

    def checkpoint(self) -> None:
        """Copy committed transactions from the WAL into the database file (PASSIVE: never waits
        for readers), so that a ``-wal`` deleted by mistake loses nothing already checkpointed."""
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def _follow(self) -> None:
        """Reconnect when another process replaced the file (healing set the old one aside),
        or when the ``-wal`` this process writes into was deleted."""
        current = _inode(self.path)
        if current is not None and current != self._inode:
            log.warning("database %s was replaced (healed by another process); reconnecting", self.path)
            self.engine.dispose()
            self._inode = current
        if time.monotonic() - self._wal_checked >= WAL_CHECK_SECONDS:
            self._recover_lost_wal()

    def _recover_lost_wal(self) -> None:
        """If this process writes into a deleted ``-wal``: copy it into the database file, reconnect."""
        self._wal_checked = time.monotonic()
        if not _holds_deleted(self._wal):
            return
        log.warning(
            "database %s: its -wal file was deleted while in use; writing the transactions it "
            "held into the database file and reconnecting",
            self.path,
        )
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        except DatabaseError as exc:  # keep the handles (the only copy): try again next time
            log.warning("database %s: could not copy the deleted -wal yet: %s", self.path, exc.orig)
            return
        self.engine.dispose()

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading: a consistent snapshot that never blocks the writer."""
        self._follow()
        with self._read_sessions() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose changes commit together at the end of the block, or not at all."""
        self._follow()
        with self._write_sessions() as session, session.begin():
            yield session

    def run_write(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn(session)`` in a write transaction, retrying if the lock stays busy, and for a
        while after "disk I/O error" (a ``-wal`` deleted under running processes)."""
        attempt, io_deadline = 0, None
        while True:
            try:
                with self.write() as session:
                    return fn(session)
            except OperationalError as exc:
                if _is_io_error(exc):
                    io_deadline = io_deadline or time.monotonic() + IO_RETRY_SECONDS
                    if time.monotonic() >= io_deadline:
                        raise
                    # Fresh connections open the files again instead of failing for good on
                    # stale handles; if this process holds the deleted -wal, it recovers it.
                    self._recover_lost_wal()
                    self.engine.dispose()
                    time.sleep(0.2 * (1 + random.random()))
                    continue
                attempt += 1
                if attempt == WRITE_RETRIES or not _is_busy(exc):
                    raise
                delay = (0.05 * 2 ** (attempt - 1)) * (1 + random.random())
                # DEBUG: a lock that stays busy ends as a condition, said once (engine/store/conditions.py).
                log.debug("%s: database busy, retrying write in %.2f s", self.path, delay)
                time.sleep(delay)

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
    # Only a new, empty file takes this (before its first table); then pruning can hand space
    # back with PRAGMA incremental_vacuum instead of a full VACUUM (engine/store/prune.py).
    cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
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
