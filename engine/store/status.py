"""The engine service's word on which engine runs and why, kept in the shared store.

The kiosk's curator panel runs in another process; it reads this to tell staff whether the
Art2Mus GPU engine or the default engine makes the music, and why (e.g. which file of the
model bundle is missing).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime

from .db import Database
from .models import ServiceStatus, utcnow

ENGINE_SERVICE = "engine"


@dataclass(frozen=True)
class EngineStatus:
    engine: str
    model_version: str
    reason: str
    worker_id: str
    started_at: datetime


def record_engine(db: Database, engine_name: str, model_version: str, reason: str) -> None:
    """Say (replacing what an earlier start said) which engine this service runs and why."""
    row = ServiceStatus(
        service=ENGINE_SERVICE,
        engine=engine_name,
        model_version=model_version,
        reason=reason,
        worker_id=f"{socket.gethostname()}:{os.getpid()}",
        started_at=utcnow(),
    )
    db.run_write(lambda s: s.merge(row))


def read_engine(db: Database) -> EngineStatus | None:
    """What the engine service said when it last started; None if it never ran."""
    with db.read() as s:
        row = s.get(ServiceStatus, ENGINE_SERVICE)
        if row is None:
            return None
        return EngineStatus(row.engine, row.model_version, row.reason, row.worker_id, row.started_at)
