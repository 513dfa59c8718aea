"""Machine conditions that are active now: one WARNING when one starts, one INFO when it ends.

A process keeps its conditions in memory (the truth for its own log) and mirrors them into the
``conditions`` table so that another process (``art2mus status``, the health endpoint) can
list them with :func:`active_conditions`. The mirror is best effort: while the disk is full
or the database read-only the row may not be written; it is written when next possible.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .faults import Fault
from .models import Condition, utcnow

if TYPE_CHECKING:
    from .db import Database

log = logging.getLogger("engine.conditions")

# A condition seen again refreshes its row at most this often (a write a second would be
# exactly the load a struggling disk does not need).
REFRESH_SECONDS = 30.0


@dataclass(frozen=True)
class ActiveCondition:
    """One active condition as the status and health reports show it."""

    name: str  # a Fault value, e.g. "disk-full"
    message: str  # what is wrong, in plain words (names the file or folder)
    started_at: datetime  # UTC, naive (as every time in the store)
    seen_at: datetime  # last time it was met again
    count: int  # how often it was met
    worker_id: str  # host:pid of the process that saw it


class Conditions:
    """This process's active conditions; :meth:`start` and :meth:`end` log only transitions."""

    def __init__(self, db: Database | None):
        self.db = db
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self._active: dict[Fault, ActiveCondition] = {}
        self._synced: dict[Fault, float] = {}  # monotonic time each row was last written
        self._started_mono: dict[Fault, float] = {}

    def is_active(self, fault: Fault) -> bool:
        return fault in self._active

    def active(self) -> list[ActiveCondition]:
        return list(self._active.values())

    def start(self, fault: Fault, message: str) -> bool:
        """Note that ``fault`` is met now; True (and one WARNING) only if it was not active."""
        now = utcnow()
        old = self._active.get(fault)
        if old is None:
            log.warning("condition %s started: %s", fault, message)
            self._active[fault] = ActiveCondition(fault.value, message, now, now, 1, self.worker_id)
            self._started_mono[fault] = time.monotonic()
        else:
            self._active[fault] = ActiveCondition(
                fault.value, message, old.started_at, now, old.count + 1, self.worker_id
            )
        self._sync(fault, force=old is None)
        return old is None

    def end(self, fault: Fault) -> bool:
        """Note that ``fault`` is over; True (and one INFO) only if it was active."""
        cond = self._active.pop(fault, None)
        if cond is None:
            return False
        lasted = time.monotonic() - self._started_mono.pop(fault, time.monotonic())
        log.info("condition %s ended after %.0f s (met %d times)", fault, lasted, cond.count)
        self._synced.pop(fault, None)
        self._write(lambda s: s.execute(delete(Condition).where(Condition.name == fault.value)))
        return True

    def end_all_but(self, keep: set[Fault]) -> None:
        for fault in list(self._active):
            if fault not in keep:
                self.end(fault)

    def _sync(self, fault: Fault, force: bool) -> None:
        last = self._synced.get(fault)
        if not force and last is not None and time.monotonic() - last < REFRESH_SECONDS:
            return
        c = self._active[fault]
        row = Condition(
            name=c.name,
            message=c.message,
            worker_id=c.worker_id,
            started_at=c.started_at,
            seen_at=c.seen_at,
            count=c.count,
        )
        if self._write(lambda s: s.merge(row)):
            self._synced[fault] = time.monotonic()

    def _write(self, fn: Callable[[Session], object]) -> bool:
        if self.db is None:
            return False
        try:
            self.db.run_write(fn)
        except Exception as exc:  # the condition itself may forbid writing; the log has it
            log.debug("cannot record the condition in the database: %s", exc)
            return False
        return True


def forget_ended(db: Database, alive: Callable[[str], bool]) -> int:
    """Delete the rows of processes of this machine that have ended (killed while a condition
    was active, they could not say it ended); ``alive(worker_id)`` tells. Returns how many."""
    prefix = f"{socket.gethostname()}:"

    def write(s: Session) -> int:
        rows = s.scalars(select(Condition).where(Condition.worker_id.startswith(prefix))).all()
        ended = [r for r in rows if not alive(r.worker_id)]
        for r in ended:
            s.delete(r)
        return len(ended)

    return db.run_write(write)


def active_conditions(db: Database) -> list[ActiveCondition]:
    """The conditions recorded in the store by any process, oldest first (for status/health)."""
    with db.read() as s:
        rows = s.scalars(select(Condition).order_by(Condition.started_at)).all()
        return [
            ActiveCondition(r.name, r.message, r.started_at, r.seen_at, r.count, r.worker_id) for r in rows
        ]
