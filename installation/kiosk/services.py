"""The kiosk's narrow door to the rest of the installation.

Widgets never touch SQLAlchemy, the clip store, the job queue or the audio player directly;
they call :class:`KioskServices`. The same object serves demo mode (catalog watcher, default
engine worker and player all in this process) and normal mode (the engine service fills the
store from another process), so the widgets do not know which one runs.

Everything here is plain Python (no Qt) and safe to call from worker threads: the database
gives every thread its own connection, and the player's ``prepare`` is thread-safe.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from sqlalchemy import select

from engine.catalog.metadata import title_from_filename
from engine.store import Artwork, ArtworkStatus, Clip, Database, JobKind, JobStatus

if TYPE_CHECKING:
    from installation.audio.schedule import QuietSchedule

log = logging.getLogger(__name__)

# The descriptors of the artworks with a clip: vectors and kinds by artwork id, and the ids.
_Embeddings = tuple[dict[int, np.ndarray], dict[int, str], list[int]]


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:  # between set-aside and the new file: keep the connection for now
        return None


class MusicState:
    """Where an artwork's music stands, as the gallery and the curator panel show it."""

    READY = "ready"  # a clip is in the store
    COMPOSING = "composing"  # a job is queued or running
    FAILED = "failed"  # the last job gave up; ``music_reason`` says why
    WAITING = "waiting"  # nothing yet (the engine service has not reached it)


@dataclass(frozen=True)
class ArtworkEntry:
    """One artwork as the gallery and the curator's list need it (no image bytes)."""

    id: int
    title: str
    artist: str
    year: str
    path: str
    image_hash: str | None
    status: str  # an ArtworkStatus value, as the raw SQL read it
    reason: str  # why the file is invalid
    music: str  # MusicState
    music_reason: str = ""
    width: int | None = None  # the image file's own size (pixels), as the scan read it
    height: int | None = None

    @property
    def display_title(self) -> str:
        return self.title or title_from_filename(self.path)


@dataclass(frozen=True)
class ArtworkDetail:
    id: int
    title: str
    artist: str
    year: str
    description: str
    style: str
    path: Path  # absolute path of the image file
    image_hash: str | None
    width: int | None
    height: int | None


@dataclass(frozen=True)
class EngineInfo:
    """Which engine makes the music, and why (shown in the curator panel)."""

    name: str
    reason: str
    model_version: str = ""


@dataclass(frozen=True)
class ClipChoice:
    """What to play for an artwork: its own clip, or the nearest ready one meanwhile."""

    clip: Any  # engine.store.clips.ClipInfo
    artwork_id: int  # the artwork the clip was made for
    own: bool
    similarity: float = 1.0

    @property
    def key(self) -> str:
        return clip_key(self.clip.id)


def clip_key(clip_id: int) -> str:
    """The player's cache key for a stored clip."""
    return f"clip:{clip_id}"


class PlayerLike(Protocol):
    """The part of ``installation.audio.Player`` the kiosk uses (see APIS.md)."""

    schedule: QuietSchedule  # the quiet hours; the player re-reads them every few seconds

    def prepare(self, key: str, loader: Callable[[], tuple[np.ndarray, int]], *, loop: Any = ...) -> Any: ...
    def is_prepared(self, key: str) -> bool: ...
    def crossfade_to(self, clip: Any, seconds: float | None = None) -> None: ...
    def set_volume(self, v: float, ramp_seconds: float | None = None) -> None: ...
    def level(self) -> float: ...
    def spectrum(self, bands: int) -> np.ndarray: ...
    def telemetry(self) -> dict: ...


class KioskServices:
    """Catalog reads, clips, jobs and the player, for the kiosk's widgets."""

    def __init__(
        self,
        db: Database,
        collection: Path,
        *,
        player: PlayerLike,
        clip_store: Any,
        job_queue: Any,
        engine_info: EngineInfo | Callable[[], EngineInfo],
        enqueue_job: Callable[[JobKind, ArtworkDetail, int], int | None] | None = None,
        rescan: Callable[[], Any] | None = None,
        quiet_hours: list | None = None,
        volume: float = 1.0,
        demo: bool = False,
    ):
        self.db = db
        self.collection = Path(collection)
        self.player = player
        self.clips = clip_store
        self.jobs = job_queue
        # A fixed value (demo mode sets it when its engine starts), or a function asked each
        # time (normal mode: what the engine service last recorded in the store).
        self._engine_info = engine_info
        self._enqueue_job = enqueue_job
        self._rescan = rescan
        self.quiet_hours = quiet_hours or []
        self.volume = volume
        self.demo = demo
        self._embeddings: tuple[int, _Embeddings] | None = None  # (signature, descriptors)
        self._lock = threading.Lock()
        self._local = threading.local()  # one raw read-only connection per thread
        self._reopened = 0  # how often a replaced database file was opened anew

    def _raw(self) -> sqlite3.Connection:
        """A read-only sqlite3 connection for this thread.

        The two hottest reads bypass the ORM: thumbnails (one per card, from the decoder
        threads; the sqlite3 module releases the GIL while it reads, so the UI thread keeps
        painting) and the change counter polled by the window.

        When the engine sets a damaged file aside and makes a new one
        (``engine/store/health.py``), an open connection would keep reading the old inode
        for ever; so the file's inode is compared on each call (one ``stat``, microseconds)
        and a replaced file is opened anew, as ``Database`` does for the ORM's connections.
        """
        conn = getattr(self._local, "conn", None)
        inode = _inode(self.db.path)
        if conn is not None and inode is not None and inode != self._local.inode:
            log.info("database %s was replaced; the kiosk reads the new file", self.db.path)
            conn.close()
            conn = None
            # data_version counts per connection: a new connection's first value may equal
            # the old one's last, and the window would not re-read the new file's catalog.
            with self._lock:
                self._reopened += 1
        if conn is None:
            conn = sqlite3.connect(
                f"file:{self.db.path}?mode=ro", uri=True, check_same_thread=False, timeout=30
            )
            self._local.conn = conn
            self._local.inode = inode
        return conn

    # -- catalog ---------------------------------------------------------------------------
    def signature(self) -> int:
        """A number that changes whenever any connection (this process or the engine
        service) commits to the store: SQLite's ``PRAGMA data_version``, which costs
        microseconds however large the collection is. (A query such as max(updated_at)
        would read past every thumbnail blob in the table.)"""
        version = self._raw().execute("PRAGMA data_version").fetchone()[0]
        return version + (self._reopened << 40)

    def entries(self, *, include_unavailable: bool = False) -> list[ArtworkEntry]:
        """The collection in gallery order (title, then path).

        Visitors see only readable artworks of the collection; the curator panel passes
        ``include_unavailable`` to see invalid and missing files (with reasons) as well.
        Plain SQL on this thread's read-only connection: 10,000 rows in a few tens of
        milliseconds, in one consistent snapshot.
        """
        where = "source = 'collection'" + ("" if include_unavailable else " AND status = ?")
        conn = self._raw()
        conn.execute("BEGIN")  # one snapshot for all four reads
        try:
            rows = conn.execute(
                "SELECT id, title, artist, year, path, image_hash, status, reason, width, height"
                f" FROM artworks WHERE {where}",
                () if include_unavailable else (ArtworkStatus.READY,),
            ).fetchall()
            ready_hashes = {h for (h,) in conn.execute("SELECT DISTINCT image_hash FROM clips")}
            open_jobs = {
                a
                for (a,) in conn.execute(
                    "SELECT artwork_id FROM jobs WHERE status IN (?, ?)",
                    (JobStatus.QUEUED, JobStatus.RUNNING),
                )
            }
            failed = dict(
                conn.execute(
                    "SELECT artwork_id, error FROM jobs WHERE status = ? ORDER BY id",
                    (JobStatus.FAILED,),
                ).fetchall()
            )
        finally:
            conn.execute("COMMIT")
        out = []
        for id_, title, artist, year, path, image_hash, status, reason, width, height in rows:
            music_reason = ""
            if image_hash is not None and image_hash in ready_hashes:
                music = MusicState.READY
            elif id_ in open_jobs:
                music = MusicState.COMPOSING
            elif id_ in failed:
                music, music_reason = MusicState.FAILED, failed[id_] or "unknown error"
            else:
                music = MusicState.WAITING
            out.append(
                ArtworkEntry(
                    id_,
                    title or "",
                    artist or "",
                    year or "",
                    path,
                    image_hash,
                    status,
                    reason or "",
                    music,
                    music_reason,
                    width,
                    height,
                )
            )
        out.sort(key=lambda e: (e.display_title.casefold(), e.path))
        return out

    def detail(self, artwork_id: int) -> ArtworkDetail | None:
        with self.db.read() as s:
            a = s.get(Artwork, artwork_id)
            if a is None:
                return None
            return ArtworkDetail(
                a.id, a.title or title_from_filename(a.path), a.artist or "", a.year or "",
                a.description or "", a.style or "", self.collection / a.path, a.image_hash,
                a.width, a.height,
            )  # fmt: skip

    def catalog_problems(self) -> list:
        """The collection's metadata problems, by file and line (engine/store/problems.py)."""
        from engine.store.problems import stored_problems

        return stored_problems(self.db)

    def thumbnail(self, artwork_id: int) -> bytes | None:
        """The stored JPEG thumbnail (called from the thumbnail threads)."""
        row = self._raw().execute("SELECT thumbnail FROM artworks WHERE id = ?", (artwork_id,)).fetchone()
        return row[0] if row else None

    @property
    def engine_info(self) -> EngineInfo:
        info = self._engine_info
        return info() if callable(info) else info

    @engine_info.setter
    def engine_info(self, info: EngineInfo) -> None:
        self._engine_info = info

    def rescan(self) -> Any:
        """Read the collection folder again now (curator panel)."""
        if self._rescan is None:
            raise RuntimeError("this kiosk cannot rescan: no collection folder is configured")
        return self._rescan()

    # -- clips -----------------------------------------------------------------------------
    def own_clip(self, artwork_id: int) -> ClipChoice | None:
        info = self.clips.playable_for(artwork_id)
        return ClipChoice(info, artwork_id, own=True) if info is not None else None

    def clip_choice(self, artwork_id: int) -> ClipChoice | None:
        """The artwork's own clip, else the clip of the most similar artwork that has one."""
        own = self.own_clip(artwork_id)
        if own is not None:
            return own
        return self.nearest_ready(artwork_id)

    def nearest_ready(self, artwork_id: int) -> ClipChoice | None:
        """The ready clip whose artwork looks most like this one.

        Similarity is the cosine of the catalog's image descriptors (``Artwork.embedding``);
        artworks without a comparable descriptor fall back to any ready clip.
        """
        vectors, kinds, ready = self._ready_embeddings()
        if not ready:
            return None
        with self.db.read() as s:
            row = s.execute(
                select(Artwork.embedding, Artwork.embedding_kind).where(Artwork.id == artwork_id)
            ).one_or_none()
        best_id, best_sim = ready[0], 0.0
        if row is not None and row[0]:
            query = np.frombuffer(row[0], dtype=np.float32)
            candidates = [
                a for a in ready
                if a != artwork_id and kinds.get(a) == row[1] and vectors[a].shape == query.shape
            ]  # fmt: skip
            if candidates:
                matrix = np.stack([vectors[a] for a in candidates])
                sims = (
                    matrix
                    @ query
                    / (np.linalg.norm(matrix, axis=1) * (np.linalg.norm(query) + 1e-12) + 1e-12)
                )
                i = int(np.argmax(sims))
                best_id, best_sim = candidates[i], float(sims[i])
        info = self.clips.playable_for(best_id)
        if info is None:
            return None
        return ClipChoice(info, best_id, own=False, similarity=best_sim)

    def _ready_embeddings(self) -> _Embeddings:
        """Descriptors of the artworks that have a clip, cached until the store changes."""
        sig = self.signature()
        with self._lock:
            if self._embeddings is not None and self._embeddings[0] == sig:
                return self._embeddings[1]
        with self.db.read() as s:
            ready_hashes = select(Clip.image_hash).distinct().scalar_subquery()
            rows = s.execute(
                select(Artwork.id, Artwork.embedding, Artwork.embedding_kind)
                .where(Artwork.image_hash.in_(ready_hashes))
                .where(Artwork.status != ArtworkStatus.INVALID)
                .order_by(Artwork.id)
            ).all()
        vectors = {i: np.frombuffer(e, dtype=np.float32) for i, e, _ in rows if e}
        kinds = {i: k for i, _, k in rows}
        value: _Embeddings = (vectors, kinds, [i for i, _, _ in rows])
        with self._lock:
            self._embeddings = (sig, value)
        return value

    def candidates(self, artwork_id: int) -> list:
        """Every clip generated for this artwork's image (curator panel), chosen first."""
        detail = self.detail(artwork_id)
        if detail is None or detail.image_hash is None:
            return []
        found = list(self.clips.clips_for_image(detail.image_hash))
        found.sort(key=lambda c: (not c.chosen, -(c.score or 0.0), -c.id))
        return found

    def choose(self, clip_id: int) -> None:
        self.clips.choose(clip_id)

    def request_music(self, artwork_id: int) -> int | None:
        """Ask the engine for this artwork's clip, ahead of pregeneration (a visitor waits)."""
        if self._enqueue_job is None:
            return None
        detail = self.detail(artwork_id)
        if detail is None or detail.image_hash is None:
            return None
        from engine.store.jobs import PRIORITY_VISITOR

        return self._enqueue_job(JobKind.VISITOR, detail, PRIORITY_VISITOR)

    def request_capture_music(self, artwork_id: int) -> int | None:
        """Ask the engine for a camera capture's clip, before anything else."""
        if self._enqueue_job is None:
            return None
        detail = self.detail(artwork_id)
        if detail is None or detail.image_hash is None:
            return None
        from engine.store.jobs import PRIORITY_CAPTURE

        return self._enqueue_job(JobKind.CAPTURE, detail, PRIORITY_CAPTURE)

    def regenerate(self, artwork_id: int) -> int | None:
        """Compose new candidates for this artwork (curator panel).

        The worker makes them with fresh seeds and stores them beside the clips there are:
        the chosen clip keeps playing and nothing is removed; the curator picks among them.
        """
        if self._enqueue_job is None:
            return None
        detail = self.detail(artwork_id)
        if detail is None or detail.image_hash is None:
            return None
        from engine.store.jobs import PRIORITY_VISITOR

        return self._enqueue_job(JobKind.REGENERATE, detail, PRIORITY_VISITOR)

    def job_counts(self) -> dict[JobStatus, int]:
        return dict(self.jobs.counts())

    # -- player ----------------------------------------------------------------------------
    def is_cached(self, choice: ClipChoice) -> bool:
        return self.player.is_prepared(choice.key)

    def prepare(self, choice: ClipChoice) -> Any:
        """Decode and resample the clip for the player (blocking: call off the UI thread
        unless :meth:`is_cached` says it is ready)."""
        from engine.loops import LoopMode

        clip_id = choice.clip.id
        # An engine clip loops as made: its stored loop, or whole (stored before loops were).
        loop = getattr(choice.clip, "loop", None) or LoopMode.WHOLE
        return self.player.prepare(choice.key, lambda: self.clips.load_audio(clip_id), loop=loop)

    def crossfade(self, prepared: Any, seconds: float | None = None) -> None:
        self.player.crossfade_to(prepared, seconds)

    def set_volume(self, volume: float) -> None:
        self.player.set_volume(volume)
        self.volume = volume

    def set_quiet_hours(self, hours: list) -> None:
        """Replace the quiet hours of the running player (until the kiosk restarts).

        The player re-reads its schedule every few seconds and ramps to the new level.
        """
        if hasattr(self.player, "set_quiet_hours"):
            self.player.set_quiet_hours(hours)
        else:
            from installation.audio.schedule import QuietSchedule

            self.player.schedule = QuietSchedule(hours)
        self.quiet_hours = list(hours)

    def level(self) -> float:
        return float(self.player.level())

    def spectrum(self, bands: int) -> np.ndarray:
        return np.asarray(self.player.spectrum(bands), dtype=np.float32)

    def telemetry(self) -> dict:
        try:
            return dict(self.player.telemetry())
        except Exception as exc:  # the panel must open even when the audio is in trouble
            return {"error": str(exc)}
