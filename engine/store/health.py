"""Checking the database file and setting a damaged one aside, so the store heals itself.

A database can be damaged by a power cut on a bad disk, a full disk at the wrong moment or a
person's mistake. A damaged file must not stop the installation for good: it is moved aside
(kept, with the time in its name, for whoever wants to look), a new one is made, and the
engine service rebuilds the catalog from the collection folder and regenerates the clips.
The collection folder is never touched.

Damage is told apart from trouble: "file is not a database" or "malformed", or a check that
does not answer "ok", is damage; a locked, read-only or missing file is not (it is a fault,
engine/store/faults.py), and such a file is never moved.

Several processes open one file. Healing holds an exclusive lock (``NAME.heal-lock`` beside
the database) and checks again under it, so a file is set aside once, by whichever process
finds it first; the others follow the new file (``Database`` notices the replaced inode).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger("engine.store")

# The files SQLite keeps beside a database in WAL mode; they belong to it and go aside with it.
COMPANIONS = ("-wal", "-shm")


class CheckLevel:
    """How thoroughly :func:`check_file` looks (names of SQLite's pragmas)."""

    OPEN = "open"  # open it and read its schema: catches a wrong header, a truncated schema
    QUICK = "quick_check"  # every page's structure: O(size), seconds for gigabytes
    FULL = "integrity_check"  # also every index against its table: the scheduled check


def check_file(path: Path, level: str = CheckLevel.QUICK, timeout_s: float = 30.0) -> str | None:
    """What is wrong with the database at ``path`` (its first problem), or None when it is
    sound or when it cannot be judged now (locked, unreadable: not damage)."""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout_s)
    except sqlite3.OperationalError:
        return None  # cannot open it at all: opening proper will say why
    try:
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        if level == CheckLevel.OPEN:
            return None
        rows = con.execute(f"PRAGMA {level}(3)").fetchall()
    except sqlite3.OperationalError:
        return None  # busy, I/O trouble: a fault, not damage
    except sqlite3.DatabaseError as exc:
        return str(exc).replace("\n", " ")
    finally:
        con.close()
    answer = " ".join(str(r[0]) for r in rows).replace("\n", " ") if rows else "no answer"
    return None if answer == "ok" else answer


def aside_name(path: Path, now: datetime | None = None) -> Path:
    """``art2mus.db`` → ``art2mus.db.damaged-20261129T150133Z`` (a number added if taken)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    return candidate


def set_aside(path: Path, problem: str) -> Path:
    """Move the damaged database (and its -wal and -shm) aside; returns its new name.

    One plain log line names both files and what was wrong: it is the line a technician
    looks for.
    """
    target = aside_name(path)
    os.replace(path, target)
    for suffix in COMPANIONS:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            os.replace(companion, target.with_name(target.name + suffix))
    log.error(
        "database %s is damaged (%s): moved aside to %s; a new one is made and the catalog "
        "and clips are rebuilt from the collection",
        path,
        problem,
        target,
    )
    return target


@contextlib.contextmanager
def heal_lock(path: Path) -> Iterator[None]:
    """Hold the healing lock of the database at ``path`` (blocks while another process heals)."""
    lock_path = path.with_name(path.name + ".heal-lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def heal_if_damaged(path: Path, level: str = CheckLevel.QUICK) -> Path | None:
    """Check the database at ``path`` and set it aside when damaged; returns where it went,
    or None when it was sound (or absent)."""
    if not _has_content(path) or check_file(path, level) is None:
        return None
    try:
        with heal_lock(path):
            # Another process may have healed it while this one waited for the lock.
            problem = check_file(path, level) if _has_content(path) else None
            return None if problem is None else set_aside(path, problem)
    except OSError as exc:  # e.g. a read-only folder: nothing can be moved; opening will say so
        log.error("database %s is damaged but cannot be moved aside: %s", path, exc.strerror or exc)
        return None


def _has_content(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False
