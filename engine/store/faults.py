"""Faults of the machine versus failures of an artwork, and how the service waits them out.

An artwork *fails* when its own input is at fault: a bad image, an engine error on that
image. That counts an attempt, and after ``engine.max_attempts`` the job is failed (until its
cool-down, see ``JobQueue.retry_cooled_down``). A *fault* is the machine's: the disk is full,
the database is busy, read-only or damaged, the worker was killed, the clock jumped. Faults
never count an attempt; the work waits with exponential back-off and is retried forever,
because freeing space or a restart makes it succeed with no one touching the jobs.

:func:`classify` tells the two apart from the exception; :class:`Backoff` spaces the retries;
:class:`RepeatFilter` keeps a repeated log line from flooding the journal.
"""

from __future__ import annotations

import errno
import random
import sqlite3
import time
from enum import StrEnum

from sqlalchemy.exc import DBAPIError


class Fault(StrEnum):
    """A machine condition (its value names the condition in the log and the status)."""

    DISK_FULL = "disk-full"  # a write found no space
    DISK_LOW = "disk-low"  # free space under store.min_free_megabytes: generation paused
    DB_BUSY = "database-busy"  # another process held the write lock too long
    DB_READONLY = "database-read-only"  # the file or its folder cannot be written
    DB_UNAVAILABLE = "database-unavailable"  # cannot open the file, I/O error
    DB_DAMAGED = "database-damaged"  # not a database, malformed: healed (engine/store/health.py)
    WORKER_LOST = "worker-lost"  # a worker died mid-job (kill -9, OOM, power cut)
    CLOCK_JUMP = "clock-jump"  # the system clock jumped
    OUT_OF_MEMORY = "out-of-memory"  # host or GPU memory exhausted


# Substrings of SQLite's messages (sqlite3 gives codes only in 3.11+ and not through every
# wrapper, so the text is the portable signal). Order matters: the first match wins.
_SQLITE_MESSAGES: tuple[tuple[str, Fault], ...] = (
    ("database or disk is full", Fault.DISK_FULL),
    ("disk is full", Fault.DISK_FULL),
    ("readonly", Fault.DB_READONLY),
    ("read-only", Fault.DB_READONLY),
    ("locked", Fault.DB_BUSY),
    ("busy", Fault.DB_BUSY),
    ("malformed", Fault.DB_DAMAGED),
    ("not a database", Fault.DB_DAMAGED),
    ("disk i/o error", Fault.DB_UNAVAILABLE),
    ("unable to open", Fault.DB_UNAVAILABLE),
)

_OS_ERRNOS = {
    errno.ENOSPC: Fault.DISK_FULL,
    errno.EDQUOT: Fault.DISK_FULL,
    errno.EROFS: Fault.DB_READONLY,
    errno.EIO: Fault.DB_UNAVAILABLE,
    errno.ENOMEM: Fault.OUT_OF_MEMORY,
}


def classify(exc: BaseException) -> Fault | None:
    """The machine fault behind ``exc``, or None when it is the artwork's (or a bug)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # look through wrapped causes
        seen.add(id(current))
        fault = _classify_one(current)
        if fault is not None:
            return fault
        current = current.__cause__ or current.__context__
    return None


def _classify_one(exc: BaseException) -> Fault | None:
    if isinstance(exc, MemoryError):
        return Fault.OUT_OF_MEMORY
    if isinstance(exc, DBAPIError | sqlite3.Error):
        text = str(getattr(exc, "orig", None) or exc).lower()
        return next((fault for part, fault in _SQLITE_MESSAGES if part in text), None)
    if isinstance(exc, OSError) and exc.errno in _OS_ERRNOS:
        return _OS_ERRNOS[exc.errno]
    # torch.cuda.OutOfMemoryError is a RuntimeError; torch is not imported here.
    if type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower():
        return Fault.OUT_OF_MEMORY
    return None


def one_line(exc: BaseException) -> str:
    """The exception in one line for the log: SQLite's own words for a database error (without
    SQLAlchemy's statement and "Background on this error" lines)."""
    orig = getattr(exc, "orig", None) if isinstance(exc, DBAPIError) else None
    text = str(orig if orig is not None else exc) or type(exc).__name__
    return " ".join(text.split())


def backoff_seconds(failures: int, base: float = 1.0, cap: float = 300.0) -> float:
    """The wait after ``failures`` faults in a row: base·2^(n-1), capped, with ±25 % jitter so
    two processes meeting one fault do not retry in step."""
    if failures <= 0:
        return 0.0
    delay = min(cap, base * float(2 ** min(failures - 1, 30)))
    return delay * random.uniform(0.75, 1.25)


class Backoff:
    """Exponential back-off over consecutive faults; :meth:`reset` after a success."""

    def __init__(self, base: float = 1.0, cap: float = 300.0):
        self.base, self.cap = base, cap
        self.failures = 0

    def next_delay(self) -> float:
        self.failures += 1
        return backoff_seconds(self.failures, self.base, self.cap)

    def reset(self) -> None:
        self.failures = 0


class RepeatFilter:
    """Lets a message through once per ``every`` seconds per key and counts what it held back,
    so a fault that repeats every second costs one log line a minute, not 300 MB a day."""

    def __init__(self, every: float = 60.0):
        self.every = every
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def allow(self, key: str) -> tuple[bool, int]:
        """(whether to log now, how many were held back since the last line)."""
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            self._held[key] = self._held.get(key, 0) + 1
            return False, 0
        self._last[key] = now
        return True, self._held.pop(key, 0)
