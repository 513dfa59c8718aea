"""The store's tables: artworks, clips and jobs (SQLAlchemy 2.0 declarative models).

The schema here is the *current* one. Each change to it comes with a migration in
``engine/store/migrations.py`` so that a database from an older version is upgraded in place.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class ArtworkStatus(StrEnum):
    READY = "ready"
    INVALID = "invalid"
    # The file is no longer in the collection; the row (and its clips) are kept so that a
    # file that comes back, or is renamed, finds its clips again.
    MISSING = "missing"


class ArtworkSource(StrEnum):
    """Where an artwork's image came from."""

    COLLECTION = "collection"  # the curators' folder
    CAMERA = "camera"  # a photograph taken with the kiosk's camera (engine/capture/)


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class JobKind(StrEnum):
    # Fill in the clips an artwork lacks, most urgent first (see engine/store/jobs.py).
    PREGENERATE = "pregenerate"  # the engine service, for the whole collection
    VISITOR = "visitor"  # a visitor waits at the kiosk for this artwork's music
    CAPTURE = "capture"  # a camera photograph (engine/capture/, the kiosk's camera page)
    # New candidates with fresh seeds; the best is chosen and the clips it replaces removed.
    REGENERATE = "regenerate"


def _values_of(enum: type[StrEnum], length: int) -> Enum:
    """A VARCHAR(length) column of a StrEnum: it stores the member's *value* (SQLAlchemy's Enum
    would store its name), adds no CHECK constraint, and reads back members, so the schema
    and the stored strings are those of the plain String columns it replaced."""
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [m.value for m in members],
    )


class Artwork(Base):
    """One image of the collection (or a camera capture), identified by its content hash."""

    __tablename__ = "artworks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # sha256 of the file's bytes; NULL when the file could not be read at all.
    image_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    # Path relative to the collection folder (POSIX separators); unique within it.
    path: Mapped[str] = mapped_column(Text, unique=True)
    # ArtworkSource: the curators' folder, or a camera photograph.
    source: Mapped[str] = mapped_column(String(16), default="collection")
    title: Mapped[str] = mapped_column(Text, default="")
    artist: Mapped[str] = mapped_column(Text, default="")
    year: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    style: Mapped[str] = mapped_column(Text, default="")
    # Free-form extra metadata from the curators' files, as JSON.
    extra_json: Mapped[str] = mapped_column(Text, default="{}")
    status: Mapped[ArtworkStatus] = mapped_column(
        _values_of(ArtworkStatus, 16), default=ArtworkStatus.READY, index=True
    )
    reason: Mapped[str] = mapped_column(Text, default="")
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    file_size: Mapped[int | None] = mapped_column(Integer)
    # Modification time (ns) and size seen at the last scan: an unchanged file is not re-read.
    file_mtime_ns: Mapped[int | None] = mapped_column(Integer)
    # The file's inode at the last scan: with size and mtime it tells a rename (same inode at
    # a new path, no need to re-read) and a swap of two names (same path, other inode).
    file_inode: Mapped[int | None] = mapped_column(Integer)
    # Where the metadata came from (e.g. "catalog.csv:12", "NAME.json"), for curators.
    metadata_source: Mapped[str] = mapped_column(Text, default="")
    # JPEG thumbnail bytes for the kiosk gallery.
    thumbnail: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    # Image features/embedding as float32 bytes (used to find the nearest ready clip).
    embedding: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    embedding_kind: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    def __repr__(self) -> str:
        return f"Artwork(id={self.id}, path={self.path!r}, status={str(self.status)!r})"


class Clip(Base):
    """A generated clip, found by (image hash, engine, model version, parameters hash)."""

    __tablename__ = "clips"
    __table_args__ = (Index("ix_clips_lookup", "image_hash", "engine", "model_version", "params_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_hash: Mapped[str] = mapped_column(String(64))
    # The artwork it was made for (informational; lookups go by image hash).
    artwork_id: Mapped[int | None] = mapped_column(ForeignKey("artworks.id", ondelete="SET NULL"), index=True)
    engine: Mapped[str] = mapped_column(String(32))
    model_version: Mapped[str] = mapped_column(String(64))
    params_hash: Mapped[str] = mapped_column(String(64))
    params_json: Mapped[str] = mapped_column(Text, default="{}")
    seed: Mapped[int] = mapped_column(Integer, default=0)
    duration: Mapped[float] = mapped_column(Float)
    sample_rate: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer, default=2)
    # "flac": the audio is a complete FLAC file.
    audio_format: Mapped[str] = mapped_column(String(8), default="flac")
    # The audio of rows stored before schema 7, until it is moved into its file
    # (engine/store/clip_files.py); empty in every row that has audio_sha256.
    audio: Mapped[bytes] = deferred(mapped_column(LargeBinary, default=b""))
    caption: Mapped[str] = mapped_column(Text, default="")
    loudness_lufs: Mapped[float | None] = mapped_column(Float)
    # Rank among candidates (higher is better), from the engine's scorer when it has one.
    score: Mapped[float | None] = mapped_column(Float)
    # The candidate a curator (or the ranking) chose to play for this artwork.
    chosen: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # The clip's loop in frames at sample_rate, end exclusive (NULL in rows stored before
    # version 4: those engine clips loop whole).
    loop_start: Mapped[int | None] = mapped_column(Integer)
    loop_end: Mapped[int | None] = mapped_column(Integer)
    # The clip's audio file in the store's clip folder: the sha256 of its bytes, which is its
    # name, and its size (schema 7). NULL: the audio is still the blob above.
    audio_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    audio_size: Mapped[int | None] = mapped_column(Integer)


class Job(Base):
    """A unit of work for the engine service; survives restarts."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[JobKind] = mapped_column(_values_of(JobKind, 32))
    artwork_id: Mapped[int | None] = mapped_column(ForeignKey("artworks.id", ondelete="CASCADE"), index=True)
    image_hash: Mapped[str | None] = mapped_column(String(64))
    engine: Mapped[str] = mapped_column(String(32), default="")
    params_json: Mapped[str] = mapped_column(Text, default="{}")
    # Higher runs first (camera captures above pregeneration).
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[JobStatus] = mapped_column(_values_of(JobStatus, 16), default=JobStatus.QUEUED)
    # Attempts that failed because of the artwork itself (bad image, engine error on it) plus
    # the one running; machine faults give theirs back (see engine/store/faults.py).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Machine faults met by this job (worker killed, disk full, ...): never fail it, only delay it.
    faults: Mapped[int] = mapped_column(Integer, default=0)
    # A job put back after a fault is not claimed again before this time (exponential back-off).
    not_before: Mapped[datetime | None] = mapped_column(DateTime)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    error: Mapped[str] = mapped_column(Text, default="")
    # Which worker holds it, and when it last said it is alive (stale claims are requeued).
    claimed_by: Mapped[str] = mapped_column(String(64), default="")
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


# The claim's order (priority descending, then id) read straight off the index: with
# (status, priority, id) SQLite sorted every queued job of a priority in a temporary B-tree on
# each claim, 1.3 s inside the write lock with a million queued (schema 6).
Index("ix_jobs_claim", Job.status, Job.priority.desc(), Job.id)


class ServiceStatus(Base):
    """What a running service says about itself, for the curator panel of another process.

    The engine service writes its row ("engine") when it starts: which engine runs and why
    (e.g. why the Art2Mus engine could not load and the default engine runs instead).
    """

    __tablename__ = "service_status"

    service: Mapped[str] = mapped_column(String(32), primary_key=True)
    engine: Mapped[str] = mapped_column(String(32), default="")
    model_version: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    # host:pid of the process that wrote it, so a reader can tell a stale row.
    worker_id: Mapped[str] = mapped_column(String(64), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Condition(Base):
    """A machine condition that is active now (disk full, database read-only, ...).

    The engine service writes a row when a condition starts and deletes it when it ends, so
    that ``art2mus status`` and the health endpoint of another process can show it. The row
    is best effort: while the disk is full the write itself may fail (the log still says it).
    """

    __tablename__ = "conditions"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    message: Mapped[str] = mapped_column(Text, default="")
    # host:pid of the process that saw it.
    worker_id: Mapped[str] = mapped_column(String(64), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # When it was last seen again, and how often (repeats are not logged).
    seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    count: Mapped[int] = mapped_column(Integer, default=1)


class CatalogProblem(Base):
    """Something wrong in the collection folder that is not an invalid image: a metadata file
    that cannot be read, a row naming no image, a duplicate row, an orphaned sidecar.

    The catalog scanner keeps this table in step (engine/store/problems.py), so the curator
    panel shows each problem with its file and line, and the log says it once, when it is
    first found, rather than on every rescan.
    """

    __tablename__ = "catalog_problems"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The file, relative to the collection folder ("catalog.csv", "room/a.json").
    file: Mapped[str] = mapped_column(Text)
    # The line of that file the problem is on, where it has one.
    line: Mapped[int | None] = mapped_column(Integer, nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
