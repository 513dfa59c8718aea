"""The SQLite store shared by the engine service and the kiosk."""

from .db import Database, StoreError
from .migrations import LATEST as SCHEMA_VERSION
from .migrations import SchemaError
from .models import Artwork, ArtworkSource, ArtworkStatus, Base, Clip, Job, JobKind, JobStatus, ServiceStatus

__all__ = [
    "SCHEMA_VERSION",
    "Artwork",
    "ArtworkSource",
    "ArtworkStatus",
    "Base",
    "Clip",
    "Database",
    "Job",
    "JobKind",
    "JobStatus",
    "SchemaError",
    "ServiceStatus",
    "StoreError",
]
