"""Clip audio in files the store owns, beside the database: content-addressed, written atomically.

A million 30-s clips are about 2 TB of FLAC: kept as blobs they would make the database a file
no backup, VACUUM or integrity check can handle, and every clip would pass through SQLite's
page cache. So the audio is a file and the ``clips`` row holds its metadata and the sha256 of
its bytes (``clips.audio_sha256``, schema 7):

- **Where**: ``DATABASE.clips/`` beside the database file (``art2mus.db.clips/ab/abcd….flac``,
  two hex digits of fan-out so no folder holds more than a few thousand files of a million).
  A folder beside the file goes wherever the database goes (its configured path, a test's temp
  folder, a Ray cluster's shared storage).
- **Content-addressed**: the name is the sha256 of the bytes, so a file is never rewritten with
  other content, two writers of the same clip write the same file, and a load can verify that
  the bytes are the ones stored (a damaged file is found even where FLAC would still decode).
- **Atomic**: written to a temporary name in the same folder, flushed and fsynced, then
  ``os.replace``d into place and the folder fsynced; only then is the row that names it
  committed. A crash leaves at most a file no row names (an *orphan*), never a row without its
  file; orphans older than an hour are swept by ``art2mus store prune``.
- **Compact**: FLAC, 24-bit, as the blobs were (lossless; the player resamples it anyway).

Rows of stores made before schema 7 keep their blob until :func:`move_blobs_to_files` moves it:
a batch at a time, each batch's files written before one transaction points the rows at them
and empties their blobs, so an interrupted move resumes where it stopped and loses nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine.atomic_writes import write_bytes

from .models import Clip

if TYPE_CHECKING:
    from .db import Database

log = logging.getLogger("engine.store")

SUFFIX = ".flac"
# Clips moved per transaction by move_blobs_to_files: 16 × ~5 MB in memory at most.
MOVE_BATCH = 16
# A file no row names is left this long before a sweep removes it: a clip is written before
# its row, so a younger one may belong to a put in progress.
ORPHAN_MIN_AGE_S = 3600.0


def clip_folder(db_path: Path) -> Path:
    """``art2mus.db`` → ``art2mus.db.clips`` (beside it)."""
    return db_path.with_name(db_path.name + ".clips")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ClipFileMissing(FileNotFoundError):
    """The file a clip row names is not there (deleted, or a disk that lost it)."""


class ClipFileDamaged(ValueError):
    """The file's bytes are not the ones stored (their sha256 differs from its name)."""


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    path: Path
    size: int
    mtime: float


class ClipFiles:
    """The clip folder of one database."""

    def __init__(self, folder: Path):
        self.folder = folder

    @classmethod
    def of(cls, db: Database) -> ClipFiles:
        return cls(clip_folder(db.path))

    def path_for(self, sha256: str) -> Path:
        return self.folder / sha256[:2] / f"{sha256}{SUFFIX}"

    def write(self, data: bytes) -> str:
        """Store ``data`` (durably, atomically) and return its sha256, the file's name."""
        sha = sha256_bytes(data)
        target = self.path_for(sha)
        if target.exists() and _file_sha256(target) == sha:
            # The same clip again (two workers, a resumed move): nothing to write. Made young,
            # so an orphan sweep running now leaves it to the row about to name it.
            os.utime(target)
            return sha
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(target, data)
        _fsync_folder(target.parent)  # the rename itself survives a power cut
        return sha

    def read(self, sha256: str) -> bytes:
        """The stored bytes, checked against their name. Raises :class:`ClipFileMissing` or
        :class:`ClipFileDamaged`."""
        path = self.path_for(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ClipFileMissing(f"{path}: the clip's file is missing") from None
        if sha256_bytes(data) != sha256:
            raise ClipFileDamaged(f"{path}: the file's bytes changed since it was stored (sha256 differs)")
        return data

    def delete(self, sha256: str) -> int:
        """Remove a file (no row may name it any more); returns the bytes freed."""
        path = self.path_for(sha256)
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:
            return 0
        return size

    def files(self) -> Iterator[StoredFile]:
        """Every stored clip file (temporary files of writes in progress left out)."""
        if not self.folder.is_dir():
            return
        for sub in sorted(self.folder.iterdir()):
            if not sub.is_dir():
                continue
            for path in sub.glob(f"*{SUFFIX}"):
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                yield StoredFile(path.name[: -len(SUFFIX)], path, st.st_size, st.st_mtime)


def _file_sha256(path: Path) -> str:
    from engine.hashing import sha256_file

    return sha256_file(path)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unreferenced(s: Session, hashes: set[str]) -> set[str]:
    """Those of ``hashes`` that no clip row names any more (their files may go)."""
    if not hashes:
        return set()
    named = set(s.scalars(select(Clip.audio_sha256).where(Clip.audio_sha256.in_(hashes))).all())
    return hashes - named


def move_blobs_to_files(
    db: Database,
    batch: int = MOVE_BATCH,
    on_batch: Callable[[int], None] | None = None,
    stop: Callable[[], bool] | None = None,
) -> int:
    """Move the audio blobs of rows stored before schema 7 into clip files; returns how many.

    Each batch: read the blobs, write their files (durable), then one transaction points the
    rows at the files and empties the blobs. Interrupted anywhere, the rows not yet pointed at
    a file keep their blob (readers use it meanwhile) and the next call goes on from there;
    ``stop()`` true ends it between batches.
    """
    files = ClipFiles.of(db)
    moved = 0
    started = time.monotonic()
    while stop is None or not stop():
        with db.read() as s:
            rows = s.execute(
                select(Clip.id, Clip.audio).where(Clip.audio_sha256.is_(None)).order_by(Clip.id).limit(batch)
            ).all()
        if not rows:
            break
        stored = [(clip_id, files.write(bytes(audio or b"")), len(audio or b"")) for clip_id, audio in rows]

        def point(s: Session, stored: list[tuple[int, str, int]] = stored) -> None:
            for clip_id, sha, size in stored:
                s.execute(
                    update(Clip)
                    .where(Clip.id == clip_id, Clip.audio_sha256.is_(None))
                    .values(audio_sha256=sha, audio_size=size, audio=b"")
                )

        db.run_write(point)
        moved += len(rows)
        if on_batch is not None:
            on_batch(moved)
    if moved:
        log.info(
            "moved the audio of %d clips from %s into files in %s (%.1f s)",
            moved,
            db.path,
            files.folder,
            time.monotonic() - started,
        )
    return moved


def sweep_orphans(
    db: Database, min_age_s: float = ORPHAN_MIN_AGE_S, dry_run: bool = False
) -> tuple[int, int]:
    """Remove clip files no row names (left by a crash between file and row, or by a database
    rebuilt after damage) once older than ``min_age_s``; returns (files, bytes)."""
    files = ClipFiles.of(db)
    cutoff = time.time() - min_age_s
    old = {f.sha256: f for f in files.files() if f.mtime < cutoff}
    if not old:
        return 0, 0
    with db.read() as s:
        gone = set()
        hashes = list(old)
        for start in range(0, len(hashes), 500):
            gone |= unreferenced(s, set(hashes[start : start + 500]))
    if dry_run:
        return len(gone), sum(old[h].size for h in gone)
    freed = sum(files.delete(h) for h in gone)
    return len(gone), freed
