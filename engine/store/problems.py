"""The collection's metadata problems, kept where the curator panel reads them.

The scanner hands over the problems it found (``engine.catalog.metadata.Problem``: a file
and a reason that begins "line N" where it has a line). A full scan sees the whole folder,
so what it did not find again is gone (fixed); a scan of a few paths (the watcher) only adds
or refreshes. Each problem keeps the time it was first seen, so the log says it once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .models import CatalogProblem, utcnow

if TYPE_CHECKING:
    from .db import Database

_LINE = re.compile(r"^line (\d+)\b")


@dataclass(frozen=True)
class StoredProblem:
    file: str
    line: int | None
    reason: str
    first_seen: datetime


def line_of(reason: str) -> int | None:
    found = _LINE.match(reason)
    return int(found.group(1)) if found else None


def record_problems(
    db: Database, problems: Iterable[tuple[str, str]], *, complete: bool
) -> list[tuple[str, str]]:
    """Store ``problems`` ((file, reason) pairs); returns those not stored before.

    ``complete``: they are all the collection has (a full scan), so stored ones not among
    them are removed.
    """
    found = list(dict.fromkeys(problems))  # in order, once each

    def write(session: Session) -> list[tuple[str, str]]:
        now = utcnow()
        stored = {(p.file, p.reason): p for p in session.scalars(select(CatalogProblem))}
        new = []
        for file, reason in found:
            row = stored.get((file, reason))
            if row is None:
                session.add(
                    CatalogProblem(
                        file=file, line=line_of(reason), reason=reason, first_seen=now, seen_at=now
                    )
                )
                new.append((file, reason))
            else:
                row.seen_at = now
        if complete:
            gone = [p.id for key, p in stored.items() if key not in set(found)]
            if gone:
                session.execute(delete(CatalogProblem).where(CatalogProblem.id.in_(gone)))
        return new

    return db.run_write(write)


def stored_problems(db: Database) -> list[StoredProblem]:
    """Every stored problem, by file and line."""
    with db.read() as s:
        rows = s.scalars(select(CatalogProblem)).all()
        out = [StoredProblem(r.file, r.line, r.reason, r.first_seen) for r in rows]
    out.sort(key=lambda p: (p.file, p.line or 0, p.reason))
    return out
