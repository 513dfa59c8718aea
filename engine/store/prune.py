"""Bounded storage: which clips are no longer needed, removing them, handing the space back.

A clip goes when

- its image is in the collection no more: the artwork has been *missing* for longer than
  ``store.missing_grace_days`` (a drive unplugged for a while keeps its music; a renamed file
  keeps its clips anyway, they are found by content), or no artwork has that image any longer
  (it was replaced) and its artwork last changed longer ago than the grace period;
- it is *superseded*: its image has clips of a newer engine, model or settings (the key of
  its newest clip), and it is not a chosen clip. A chosen clip of a present artwork is never
  pruned: it may be a curator's pick.

A clip's audio file (engine/store/clip_files.py) goes with its row once no other row names it,
and files no row names at all (left by a crash between file and row, or by a database rebuilt
after damage) are swept once older than an hour.

Space in the database is handed back with ``PRAGMA incremental_vacuum`` (databases made since schema 4 have
``auto_vacuum = INCREMENTAL``); an older file is converted by one full ``VACUUM``, which
needs as much free space as the file and is skipped, with a message, when there is not.
"""

from __future__ import annotations

import logging
import shutil
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from .models import Artwork, ArtworkStatus, Clip, utcnow

if TYPE_CHECKING:
    from .db import Database

log = logging.getLogger("engine.store")

DELETE_BATCH = 200


@dataclass(frozen=True)
class PruneItem:
    clip_id: int
    path: str  # the artwork's path, or the image hash when no artwork names it
    reason: str
    size: int  # bytes of audio


@dataclass
class _ClipRow:
    id: int
    image_hash: str
    artwork_id: int | None
    key: tuple[str, str, str]
    chosen: bool
    created_at: datetime
    size: int


def plan_prune(db: Database, missing_grace_s: float) -> list[PruneItem]:
    """The clips that would be pruned now, with why (nothing is changed)."""
    cutoff = utcnow() - timedelta(seconds=missing_grace_s)
    with db.read() as s:
        artworks = s.execute(
            select(Artwork.id, Artwork.image_hash, Artwork.status, Artwork.path, Artwork.updated_at)
        ).all()
        clips = [
            _ClipRow(r[0], r[1], r[2], (r[3], r[4], r[5]), bool(r[6]), r[7], int(r[8] or 0))
            for r in s.execute(
                select(
                    Clip.id, Clip.image_hash, Clip.artwork_id, Clip.engine, Clip.model_version,
                    Clip.params_hash, Clip.chosen, Clip.created_at,
                    func.coalesce(Clip.audio_size, func.length(Clip.audio)),
                )
            ).all()
        ]  # fmt: skip
    present = {h for _, h, status, _, _ in artworks if h and status != ArtworkStatus.MISSING}
    missing: dict[str, list[tuple[str, datetime]]] = defaultdict(list)
    for _, h, status, path, updated in artworks:
        if h and status == ArtworkStatus.MISSING:
            missing[h].append((path, updated))
    by_id = {aid: (path, updated) for aid, _, _, path, updated in artworks}
    newest_key = _newest_keys(clips)
    items = []
    for c in clips:
        reason, path = _why(c, present, missing, by_id, newest_key, cutoff)
        if reason:
            items.append(PruneItem(c.id, path, reason, c.size))
    return items


def _newest_keys(clips: list[_ClipRow]) -> dict[str, tuple[str, str, str]]:
    newest: dict[str, _ClipRow] = {}
    for c in clips:
        if c.image_hash not in newest or (c.created_at, c.id) > (
            newest[c.image_hash].created_at,
            newest[c.image_hash].id,
        ):
            newest[c.image_hash] = c
    return {h: c.key for h, c in newest.items()}


def _why(
    c: _ClipRow,
    present: set[str],
    missing: dict[str, list[tuple[str, datetime]]],
    by_id: dict[int, tuple[str, datetime]],
    newest_key: dict[str, tuple[str, str, str]],
    cutoff: datetime,
) -> tuple[str, str]:
    """(why the clip goes, or "", and the path to show)."""
    own = by_id.get(c.artwork_id) if c.artwork_id is not None else None
    path = own[0] if own else c.image_hash[:12]
    if c.image_hash in present:
        if c.key != newest_key[c.image_hash] and not c.chosen:
            return "superseded by a newer engine, model or settings", path
        return "", path
    if c.image_hash in missing:
        rows = missing[c.image_hash]
        since = max(updated for _, updated in rows)
        return (f"missing from the collection since {since:%Y-%m-%d}" if since < cutoff else ""), rows[0][0]
    changed = own[1] if own else None
    if changed is None or changed < cutoff:
        return "its image was replaced or removed", path
    return "", path


def prune(db: Database, items: list[PruneItem]) -> int:
    """Delete the planned clips (and their files no other row names), a batch per transaction;
    returns how many were deleted."""
    return prune_counting_bytes(db, items)[0]


def prune_counting_bytes(db: Database, items: list[PruneItem]) -> tuple[int, int]:
    """:func:`prune`, also returning the bytes of the clip files it removed."""
    from .clips import ClipStore

    store = ClipStore(db)
    ids = [i.clip_id for i in items]
    deleted = freed = 0
    for start in range(0, len(ids), DELETE_BATCH):
        rows, size = store.delete_counting_bytes(ids[start : start + DELETE_BATCH])
        deleted, freed = deleted + rows, freed + size
    return deleted, freed


def reclaim(db: Database, full_vacuum: bool = True) -> tuple[int, str]:
    """Hand free pages back to the file system; (bytes returned, how). Without ``full_vacuum``
    an old file (no incremental vacuum) is left as it is: a full VACUUM blocks every writer."""
    before = _size(db)
    # VACUUM cannot run inside a transaction, and SQLAlchemy's connections always begin one:
    # use the driver's connection, in autocommit mode (engine/store/db.py sets it so).
    raw = db.engine.raw_connection()
    try:
        con = raw.driver_connection
        assert con is not None
        mode = int(con.execute("PRAGMA auto_vacuum").fetchone()[0])
        if mode == 2:  # INCREMENTAL
            con.execute("PRAGMA incremental_vacuum").fetchall()
            how = "incremental vacuum"
        elif not full_vacuum:
            return 0, "the file needs one full VACUUM first: run `art2mus store prune`"
        else:
            need = db.path.stat().st_size
            if shutil.disk_usage(db.path.parent).free < need * 1.1:
                return 0, f"no full VACUUM: it needs {need / 1e6:.0f} MB free beside the database"
            con.execute("PRAGMA auto_vacuum=INCREMENTAL")
            con.execute("VACUUM")  # once: from now on incremental
            how = "full VACUUM (converted to incremental vacuum)"
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        raw.close()
    return max(0, before - _size(db)), how


def _size(db: Database) -> int:
    total = 0
    for suffix in ("", "-wal"):
        p = db.path.with_name(db.path.name + suffix)
        if p.exists():
            total += p.stat().st_size
    return total
