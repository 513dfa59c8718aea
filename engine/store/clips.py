"""The clip cache: generated audio as FLAC files the store owns, found through the database.

A clip is found by what made it — the image's content hash, the engine's name and model
version, and the hash of the generation parameters (the engine's settings plus the duration) —
never by file name, so a renamed painting or a restarted service reuses its clips, and a new
model version does not. Several clips (candidates with different seeds) may share one key;
exactly one of them is *chosen* to play.

The audio is a content-addressed file beside the database (engine/store/clip_files.py); the row
holds its metadata and the file's sha256. The file is written (durably) before the row that
names it is committed, each in one step: a crash leaves the whole clip or none of it (at most a
file no row names, swept by ``store prune``). A file is removed only once no row names it.
Rows of stores made before schema 7 keep their blob until it is moved into a file; such rows
are read from the blob meanwhile.

A clip whose audio no longer decodes, whose file is missing, or whose file's bytes no longer
match their hash is *quarantined* by :meth:`ClipStore.load_audio`: the bytes it had are written
to ``DATABASE.quarantine/clip-ID-TIME.flac``, its row deleted, and :class:`ClipUnreadable` (a
:class:`ClipNotFound`) raised. The artwork then has no clip: the kiosk plays the nearest ready
one and the engine's housekeeping queues the artwork again.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import soundfile as sf
from sqlalchemy import ColumnElement, CursorResult, delete, insert, select, update
from sqlalchemy.orm import Session

from engine.loops import Loop

from .clip_files import ClipFileDamaged, ClipFileMissing, ClipFiles, unreferenced
from .models import Artwork, Clip, utcnow

if TYPE_CHECKING:
    from engine.engines.base import Engine, GeneratedClip

    from .db import Database


class ClipNotFound(KeyError):
    """No clip with that id (it may have been deleted for regeneration)."""

    def __str__(self) -> str:  # KeyError quotes its message; we want plain words
        return str(self.args[0]) if self.args else "clip not found"


log = logging.getLogger("engine.store")


class ClipUnreadable(ClipNotFound):
    """The clip's audio does not decode; it was quarantined (counts as missing from now on)."""


@dataclass(frozen=True)
class ClipInfo:
    """A stored clip's description, without its audio bytes."""

    id: int
    image_hash: str
    artwork_id: int | None
    engine: str
    model_version: str
    seed: int
    duration: float
    sample_rate: int
    channels: int
    caption: str
    score: float | None
    chosen: bool
    created_at: datetime
    params_hash: str = ""
    loudness_lufs: float | None = None
    loop_start: int | None = None
    loop_end: int | None = None
    audio_sha256: str | None = None  # None: the audio is still a blob (a store made before schema 7)
    audio_size: int | None = None

    @property
    def loop(self) -> Loop | None:
        """The clip's loop (frames at ``sample_rate``); None for clips stored without one."""
        if self.loop_start is None or self.loop_end is None:
            return None
        return Loop(self.loop_start, self.loop_end)


@dataclass(frozen=True)
class ImportedClip:
    """A clip made elsewhere (a Ray cluster: engine/cluster/) whose FLAC file is already in the
    store's clip folder, named by ``audio_sha256``; :meth:`ClipStore.import_clips` adds its row."""

    image_hash: str
    artwork_id: int | None
    seed: int
    duration: float
    sample_rate: int
    channels: int
    audio_sha256: str
    audio_size: int
    caption: str = ""
    score: float | None = None
    loudness_lufs: float | None = None
    loop_start: int | None = None
    loop_end: int | None = None


def clip_params(engine: Engine, duration: float) -> dict[str, Any]:
    """The parameters that key a clip: the engine's settings plus the clip's duration."""
    return {**engine.params(), "duration": round(float(duration), 3)}


def clip_params_hash(engine: Engine, duration: float) -> str:
    """The ``params_hash`` under which ``engine`` stores a clip of ``duration`` seconds.

    Use it with :meth:`ClipStore.find` to ask whether a clip is already cached.
    """
    from engine.engines.base import params_hash

    return params_hash(clip_params(engine, duration))


def encode_flac(audio: np.ndarray, sample_rate: int) -> bytes:
    """Float audio (frames, channels) as a complete 24-bit FLAC file."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1.0, 1.0), sample_rate, format="FLAC", subtype="PCM_24")
    return buf.getvalue()


def decode_flac(data: bytes) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return audio, rate


_INFO_COLUMNS = (
    Clip.id,
    Clip.image_hash,
    Clip.artwork_id,
    Clip.engine,
    Clip.model_version,
    Clip.seed,
    Clip.duration,
    Clip.sample_rate,
    Clip.channels,
    Clip.caption,
    Clip.score,
    Clip.chosen,
    Clip.created_at,
    Clip.params_hash,
    Clip.loudness_lufs,
    Clip.loop_start,
    Clip.loop_end,
    Clip.audio_sha256,
    Clip.audio_size,
)


def _info(row: Any) -> ClipInfo:
    return ClipInfo(*row)


class ClipStore:
    """Put, find and load clips in the shared database."""

    def __init__(self, db: Database):
        self.db = db
        self.files = ClipFiles.of(db)

    # -- writing ---------------------------------------------------------------------------

    def put(
        self,
        *,
        image_hash: str,
        artwork_id: int | None,
        engine: Engine,
        clip: GeneratedClip,
        chosen: bool | None = None,
    ) -> int:
        """Store ``clip``: its FLAC file first (durably), then its row in one transaction;
        returns its id.

        ``chosen=None`` makes it the chosen clip only if its key has none yet; ``True`` makes it
        the chosen one (unchoosing the others); ``False`` never.
        """
        audio = np.asarray(clip.audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[:, None]
        # Encoding and the file happen before the transaction so the write lock is held only
        # briefly; the file is durable before a row names it.
        flac = encode_flac(audio, clip.sample_rate)
        sha = self.files.write(flac)
        params = clip_params(engine, clip.duration)
        from engine.engines.base import params_hash

        key_hash = params_hash(params)
        loudness = clip.details.get("loudness_lufs") if clip.details else None
        loop = clip.loop if clip.loop is not None else Loop.whole(audio.shape[0])

        def write(s: Session) -> int:
            key = _key_filter(image_hash, engine.name, engine.model_version, key_hash)
            # The same key and seed is the same clip: two workers racing on one job store it once.
            same = s.scalar(select(Clip.id).where(*key, Clip.seed == int(clip.seed)).limit(1))
            if same is not None:
                if chosen:
                    s.execute(update(Clip).where(*key).values(chosen=False))
                    s.execute(update(Clip).where(Clip.id == same).values(chosen=True))
                return same
            has_chosen = s.scalar(select(Clip.id).where(*key, Clip.chosen.is_(True)).limit(1))
            make_chosen = (has_chosen is None) if chosen is None else chosen
            if make_chosen:
                s.execute(update(Clip).where(*key).values(chosen=False))
            row = Clip(
                image_hash=image_hash,
                artwork_id=artwork_id,
                engine=engine.name,
                model_version=engine.model_version,
                params_hash=key_hash,
                params_json=json.dumps(params, sort_keys=True),
                seed=int(clip.seed),
                duration=float(clip.duration),
                sample_rate=int(clip.sample_rate),
                channels=int(audio.shape[1]),
                audio_format="flac",
                audio=b"",
                audio_sha256=sha,
                audio_size=len(flac),
                caption=clip.caption,
                loudness_lufs=None if loudness is None else float(loudness),
                loop_start=loop.start,
                loop_end=loop.end,
                score=clip.score,
                chosen=bool(make_chosen),
            )
            s.add(row)
            s.flush()
            return row.id

        return self.db.run_write(write)

    def import_clips(
        self, clips: list[ImportedClip], engine_name: str, model_version: str, params: dict[str, Any]
    ) -> int:
        """Add the rows of clips whose files are already stored, in one transaction; returns
        how many were new (a clip with the same key and seed is there already: skipped).

        ``params`` are the engine's ``clip_params`` for the clips' duration (one duration per
        call). Each image whose key has no chosen clip gets one: its best-scored new clip.
        """
        from engine.engines.base import params_hash

        missing = [c.audio_sha256 for c in clips if not self.files.path_for(c.audio_sha256).is_file()]
        if missing:
            raise ClipFileMissing(
                f"{self.files.path_for(missing[0])}: not in the clip folder; import refused"
            )
        key_hash, params_json = params_hash(params), json.dumps(params, sort_keys=True)

        def write(s: Session) -> int:
            hashes = {c.image_hash for c in clips}
            have = set(
                s.execute(
                    select(Clip.image_hash, Clip.seed).where(
                        *_key_filter_many(hashes, engine_name, model_version, key_hash)
                    )
                ).all()
            )
            chosen = set(
                s.scalars(
                    select(Clip.image_hash).where(
                        *_key_filter_many(hashes, engine_name, model_version, key_hash), Clip.chosen.is_(True)
                    )
                ).all()
            )
            new = [c for c in clips if (c.image_hash, c.seed) not in have]
            best: dict[str, ImportedClip] = {}
            for c in new:
                if c.image_hash not in chosen:
                    current = best.get(c.image_hash)
                    if current is None or (c.score or float("-inf")) > (current.score or float("-inf")):
                        best[c.image_hash] = c
            rows = [
                {
                    "image_hash": c.image_hash,
                    "artwork_id": c.artwork_id,
                    "engine": engine_name,
                    "model_version": model_version,
                    "params_hash": key_hash,
                    "params_json": params_json,
                    "seed": int(c.seed),
                    "duration": float(c.duration),
                    "sample_rate": int(c.sample_rate),
                    "channels": int(c.channels),
                    "audio_format": "flac",
                    "audio": b"",
                    "audio_sha256": c.audio_sha256,
                    "audio_size": int(c.audio_size),
                    "caption": c.caption,
                    "loudness_lufs": c.loudness_lufs,
                    "loop_start": c.loop_start,
                    "loop_end": c.loop_end,
                    "score": c.score,
                    "chosen": best.get(c.image_hash) is c,
                    "created_at": utcnow(),
                }
                for c in new
            ]
            if rows:
                s.execute(insert(Clip), rows)  # one executemany
            return len(rows)

        return self.db.run_write(write)

    def choose(self, clip_id: int) -> None:
        """Make ``clip_id`` the one that plays for its key (a curator's pick)."""

        def write(s: Session) -> None:
            clip = s.get(Clip, clip_id)
            if clip is None:
                raise ClipNotFound(f"no clip with id {clip_id}")
            key = _key_filter(clip.image_hash, clip.engine, clip.model_version, clip.params_hash)
            s.execute(update(Clip).where(*key).values(chosen=False))
            clip.chosen = True

        self.db.run_write(write)

    def delete_for(
        self,
        image_hash: str,
        engine_name: str | None = None,
        model_version: str | None = None,
        params_hash: str | None = None,
    ) -> int:
        """Delete the clips of an image (narrowed by engine/version/params); returns how many."""
        conditions = [Clip.image_hash == image_hash]
        if engine_name is not None:
            conditions.append(Clip.engine == engine_name)
        if model_version is not None:
            conditions.append(Clip.model_version == model_version)
        if params_hash is not None:
            conditions.append(Clip.params_hash == params_hash)
        return self._delete_where(conditions)[0]

    def delete(self, clip_ids: list[int]) -> int:
        """Delete these clips (one transaction), and the files no row names any more; returns
        how many there were."""
        if not clip_ids:
            return 0
        return self._delete_where([Clip.id.in_(clip_ids)])[0]

    def delete_counting_bytes(self, clip_ids: list[int]) -> tuple[int, int]:
        """:meth:`delete`, also returning the bytes of the files it removed."""
        if not clip_ids:
            return 0, 0
        return self._delete_where([Clip.id.in_(clip_ids)])

    def _delete_where(self, conditions: list[ColumnElement[bool]]) -> tuple[int, int]:
        """Delete rows in one transaction, then the files no row names any more: (rows, bytes).
        A crash between the two leaves orphan files, which a sweep removes; never a row
        without its file."""

        def write(s: Session) -> tuple[int, set[str]]:
            hashes = {h for h in s.scalars(select(Clip.audio_sha256).where(*conditions)).all() if h}
            count = cast("CursorResult[Any]", s.execute(delete(Clip).where(*conditions))).rowcount
            return count, unreferenced(s, hashes)

        count, gone = self.db.run_write(write)
        freed = 0
        for sha in gone:
            try:
                freed += self.files.delete(sha)
            except OSError as exc:  # left as an orphan for the sweep
                log.warning(
                    "cannot remove the clip file %s: %s", self.files.path_for(sha), exc.strerror or exc
                )
        return count, freed

    # -- reading ---------------------------------------------------------------------------

    def find(self, image_hash: str, engine_name: str, model_version: str, params_hash: str) -> list[ClipInfo]:
        """The clips stored under one key, the chosen one first, then by score and age."""
        with self.db.read() as s:
            rows = s.execute(
                select(*_INFO_COLUMNS)
                .where(*_key_filter(image_hash, engine_name, model_version, params_hash))
                .order_by(Clip.chosen.desc(), Clip.score.desc().nulls_last(), Clip.id)
            ).all()
        return [_info(r) for r in rows]

    def get(self, clip_id: int) -> ClipInfo | None:
        with self.db.read() as s:
            row = s.execute(select(*_INFO_COLUMNS).where(Clip.id == clip_id)).first()
        return None if row is None else _info(row)

    def clips_for_image(self, image_hash: str) -> list[ClipInfo]:
        """Every clip of an image, any engine (newest first); for the curator panel."""
        with self.db.read() as s:
            rows = s.execute(
                select(*_INFO_COLUMNS).where(Clip.image_hash == image_hash).order_by(Clip.id.desc())
            ).all()
        return [_info(r) for r in rows]

    def playable_for(
        self,
        artwork_id: int,
        engine_name: str | None = None,
        model_version: str | None = None,
    ) -> ClipInfo | None:
        """The clip to play for an artwork, or None when it has none yet.

        Preference: the chosen clip of the artwork's image for the given engine (and model
        version, when given), then any clip of that engine, then the chosen clip of any engine,
        then the newest clip of the image. Without ``engine_name`` any engine will do.
        """
        with self.db.read() as s:
            image_hash = s.scalar(select(Artwork.image_hash).where(Artwork.id == artwork_id))
            if image_hash is None:
                return None
            rows = s.execute(select(*_INFO_COLUMNS).where(Clip.image_hash == image_hash)).all()
        if not rows:
            return None
        clips = [_info(r) for r in rows]

        def rank(c: ClipInfo) -> tuple[bool, bool, bool, int]:
            same_engine = engine_name is None or c.engine == engine_name
            same_version = model_version is None or c.model_version == model_version
            return (same_engine and same_version, same_engine, c.chosen, c.id)

        return max(clips, key=rank)

    def load_audio(self, clip_id: int) -> tuple[np.ndarray, int]:
        """The clip's audio as float32 (frames, channels) and its sample rate.

        Raises :class:`ClipUnreadable` after quarantining a clip that does not decode, whose
        file is missing or whose file's bytes changed.
        """
        with self.db.read() as s:
            row = s.execute(select(Clip.audio_sha256, Clip.audio).where(Clip.id == clip_id)).first()
        if row is None:
            raise ClipNotFound(f"no clip with id {clip_id}")
        sha, blob = row
        data = b""
        try:
            data = blob if sha is None else self.files.read(sha)
            return decode_flac(data)
        except (ClipFileMissing, ClipFileDamaged) as exc:
            if isinstance(exc, ClipFileDamaged) and sha is not None:
                data = self.files.path_for(sha).read_bytes()
            where = self.quarantine(clip_id, data, str(exc))
            raise ClipUnreadable(f"clip {clip_id}: {exc}; quarantined{_as(where)}") from None
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            where = self.quarantine(clip_id, data, str(exc))
            raise ClipUnreadable(f"clip {clip_id} does not decode ({exc}); quarantined{_as(where)}") from None

    def audio_bytes(self, clip_id: int) -> bytes:
        """The clip's stored FLAC bytes (checked against their hash), for copying it elsewhere."""
        with self.db.read() as s:
            row = s.execute(select(Clip.audio_sha256, Clip.audio).where(Clip.id == clip_id)).first()
        if row is None:
            raise ClipNotFound(f"no clip with id {clip_id}")
        return bytes(row[1]) if row[0] is None else self.files.read(row[0])

    def quarantine(self, clip_id: int, data: bytes, problem: str) -> Path | None:
        """Keep a damaged clip's bytes beside the database and delete its row (and its file,
        once no row names it); returns the file kept (None if there were no bytes to keep or
        they could not be written: the row goes all the same, it cannot play)."""
        folder = self.db.path.with_name(self.db.path.name + ".quarantine")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = folder / f"clip-{clip_id}-{stamp}.flac"
        kept: Path | None = target if data else None
        try:
            if data:
                folder.mkdir(exist_ok=True)
                target.write_bytes(data)
        except OSError as exc:
            log.warning("cannot keep the damaged clip %d in %s: %s", clip_id, folder, exc.strerror or exc)
            kept = None
        self.delete([clip_id])
        log.error(
            "clip %d of %s is unreadable (%s): quarantined%s; its artwork is generated again",
            clip_id,
            self.db.path,
            problem,
            _as(kept),
        )
        return kept

    def count(self, engine_name: str | None = None) -> int:
        from sqlalchemy import func

        stmt = select(func.count()).select_from(Clip)
        if engine_name is not None:
            stmt = stmt.where(Clip.engine == engine_name)
        with self.db.read() as s:
            return s.execute(stmt).scalar_one()


def _as(kept: Path | None) -> str:
    return f" as {kept}" if kept else ""


def _key_filter_many(
    image_hashes: set[str], engine_name: str, model_version: str, params_hash: str
) -> tuple[ColumnElement[bool], ...]:
    return (
        Clip.image_hash.in_(image_hashes),
        Clip.engine == engine_name,
        Clip.model_version == model_version,
        Clip.params_hash == params_hash,
    )


def _key_filter(
    image_hash: str, engine_name: str, model_version: str, params_hash: str
) -> tuple[ColumnElement[bool], ...]:
    return (
        Clip.image_hash == image_hash,
        Clip.engine == engine_name,
        Clip.model_version == model_version,
        Clip.params_hash == params_hash,
    )
