"""Captures in the catalog, and gone again when the configuration says.

A capture that is not a catalogued painting becomes an artwork with source ``camera`` (``ArtworkSource.CAMERA``): its
straightened picture is written (atomically) into ``capture.folder``, and the row holds what
the scanner would have computed for a file of the collection (hash, size, thumbnail, colour
descriptor), so the worker generates its clip like any other and the kiosk finds the nearest
ready clip for it meanwhile. The camera's whole frame is kept only with
``capture.keep_full_frame``: it may show the people in the room.

:func:`purge_captures` removes captures past their time: their catalog rows (their jobs go
with them), the clips made only for them, and their files. It only ever deletes files it
wrote itself (``capture-*`` in the capture folder); the collection folder is never touched.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from engine.atomic_writes import write_bytes
from engine.catalog.images import DESCRIPTOR_KIND, image_descriptor, make_thumbnail
from engine.store import Artwork, ArtworkSource, ArtworkStatus, Clip, Database, JobKind
from engine.store.jobs import PRIORITY_CAPTURE, JobQueue
from engine.store.models import utcnow

log = logging.getLogger(__name__)

CAPTURE_SOURCE = ArtworkSource.CAMERA
FILE_PREFIX = "capture-"


@dataclass(frozen=True)
class StoredCapture:
    artwork_id: int
    path: Path
    image_hash: str
    title: str


def _encode(image: np.ndarray, suffix: str) -> bytes:
    ok, data = cv2.imencode(suffix, image)
    if not ok:
        raise ValueError(f"cannot encode the capture as {suffix}")
    return data.tobytes()


def write_png(path: Path, crop: np.ndarray) -> Path:
    """Write a BGR image as PNG, atomically (``art2mus capture --out``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(path, _encode(crop, ".png"))
    return path


def add_capture(
    db: Database,
    crop: np.ndarray,
    folder: Path,
    *,
    frame: np.ndarray | None = None,
    thumbnail_size: int = 512,
    when: datetime | None = None,
) -> StoredCapture:
    """Store a straightened (BGR) capture as an artwork of the catalog.

    ``frame`` (the whole camera frame) is written beside it only when given: the caller
    passes it only when ``capture.keep_full_frame`` is on.
    """
    when = when or utcnow()
    folder.mkdir(parents=True, exist_ok=True)
    png = _encode(crop, ".png")
    image_hash = hashlib.sha256(png).hexdigest()
    stem = f"{FILE_PREFIX}{when:%Y%m%dT%H%M%S%f}Z-{image_hash[:8]}"
    path = (folder / f"{stem}.png").resolve()
    write_bytes(path, png)
    if frame is not None:
        write_bytes(folder / f"{stem}-frame.jpg", _encode(frame, ".jpg"))
    rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
    title = f"Camera capture {when:%H:%M}"
    artwork = Artwork(
        image_hash=image_hash,
        path=str(path),
        source=CAPTURE_SOURCE,
        title=title,
        description="Photographed in the room with the kiosk's camera.",
        status=ArtworkStatus.READY,
        width=int(crop.shape[1]),
        height=int(crop.shape[0]),
        file_size=len(png),
        file_mtime_ns=path.stat().st_mtime_ns,
        metadata_source="camera",
        thumbnail=make_thumbnail(rgb, thumbnail_size),
        embedding=image_descriptor(rgb).astype(np.float32).tobytes(),
        embedding_kind=DESCRIPTOR_KIND,
        created_at=when,
    )

    def write(s: Session) -> int:
        s.add(artwork)
        s.flush()
        return artwork.id

    try:
        artwork_id = db.run_write(write)
    except BaseException:
        path.unlink(missing_ok=True)  # no file without its row
        raise
    return StoredCapture(artwork_id, path, image_hash, title)


def enqueue_capture(jobs: JobQueue, stored: StoredCapture, *, engine: str = "", max_attempts: int = 3) -> int:
    """Queue the capture's clip ahead of everything else."""
    return jobs.enqueue(
        JobKind.CAPTURE,
        artwork_id=stored.artwork_id,
        image_hash=stored.image_hash,
        engine=engine,
        priority=PRIORITY_CAPTURE,
        max_attempts=max_attempts,
    )


def purge_captures(db: Database, folder: Path, *, older_than: timedelta | None = None) -> int:
    """Remove captures made more than ``older_than`` ago (all of them when None).

    Returns how many catalog entries went. The clips of their images go too, unless another
    (non-capture) artwork has the same image. Files named ``capture-*`` in ``folder`` older
    than the cut are removed as well (left-overs of a process that stopped half-way).
    """
    cutoff = utcnow() - older_than if older_than is not None else None

    def write(s: Session) -> list[tuple[str, str | None]]:
        query = select(Artwork.id, Artwork.path, Artwork.image_hash).where(Artwork.source == CAPTURE_SOURCE)
        if cutoff is not None:
            query = query.where(Artwork.created_at < cutoff)
        rows = s.execute(query).all()
        if not rows:
            return []
        hashes = {h for _, _, h in rows if h}
        shared = set(
            s.scalars(
                select(Artwork.image_hash).where(
                    Artwork.image_hash.in_(hashes), Artwork.source != CAPTURE_SOURCE
                )
            )
        )
        if hashes - shared:
            s.execute(delete(Clip).where(Clip.image_hash.in_(hashes - shared)))
        s.execute(delete(Artwork).where(Artwork.id.in_([i for i, _, _ in rows])))
        return [(p, h) for _, p, h in rows]

    removed = db.run_write(write)
    for path, _ in removed:
        _unlink_own(Path(path), folder)
    if folder.is_dir():
        cut_ts = cutoff.timestamp() if cutoff is not None else None
        for leftover in folder.glob(f"{FILE_PREFIX}*"):
            try:
                if cut_ts is None or leftover.stat().st_mtime < _local_ts(cut_ts):
                    _unlink_own(leftover, folder)
            except OSError:
                continue
    if removed:
        log.info("purged %d capture(s) from %s", len(removed), db.path)
    return len(removed)


def _local_ts(utc_naive_ts: float) -> float:
    """``datetime.timestamp()`` of a naive UTC time read it as local time: undo that."""
    offset = datetime.now().astimezone().utcoffset() or timedelta(0)
    return utc_naive_ts + offset.total_seconds()


def _unlink_own(path: Path, folder: Path) -> None:
    """Delete a file this module wrote: inside ``folder`` and named ``capture-*``; never others."""
    try:
        inside = path.resolve().parent == folder.resolve()
    except OSError:
        return
    if inside and path.name.startswith(FILE_PREFIX):
        path.unlink(missing_ok=True)
        frame = path.with_name(path.stem + "-frame.jpg")
        if frame.name.startswith(FILE_PREFIX) and not path.name.endswith("-frame.jpg"):
            frame.unlink(missing_ok=True)
