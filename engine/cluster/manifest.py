"""The manifest of a cluster run: one row per clip still to make (artwork, image, path, seed).

Built on the head node from the store, so a run resumes by skipping what exists: an artwork's
candidates whose (key, seed) is already stored are left out, and what an interrupted run
imported is never made again. Rows are plain columns (a pyarrow table), cheap to hand to Ray
Data for a million artworks.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from engine.store.models import Artwork, ArtworkStatus, Clip
from engine.worker import candidate_seed

if TYPE_CHECKING:
    from engine.store.db import Database


@dataclass(frozen=True)
class ClipKey:
    """What a clip is stored under, besides its image: the engine's identity and settings."""

    engine: str
    model_version: str
    params_hash: str


@dataclass(frozen=True)
class ManifestRow:
    artwork_id: int
    image_hash: str
    path: str  # absolute: every node reads the collection at the same path (shared storage)
    seed: int


def missing_clips(
    db: Database, collection: Path, key: ClipKey, candidates: int, base_seed: int
) -> list[ManifestRow]:
    """The clips the store lacks for every ready artwork under ``key``, in artwork order."""
    with db.read() as s:
        artworks = s.execute(
            select(Artwork.id, Artwork.image_hash, Artwork.path)
            .where(Artwork.status == ArtworkStatus.READY, Artwork.image_hash.is_not(None))
            .order_by(Artwork.id)
        ).all()
        stored: dict[str, set[int]] = defaultdict(set)
        for clip_hash, seed in s.execute(
            select(Clip.image_hash, Clip.seed).where(
                Clip.engine == key.engine,
                Clip.model_version == key.model_version,
                Clip.params_hash == key.params_hash,
            )
        ):
            stored[clip_hash].add(seed)
    rows = []
    seen: set[str] = set()  # two files with one image: made once, found by both
    for artwork_id, image_hash, path in artworks:
        if image_hash is None or image_hash in seen:
            continue
        seen.add(image_hash)
        absolute = Path(path) if Path(path).is_absolute() else collection / path
        for index in range(candidates):
            seed = candidate_seed(image_hash, base_seed, index)
            if seed not in stored[image_hash]:
                rows.append(ManifestRow(artwork_id, image_hash, str(absolute), seed))
    return rows


def as_table(rows: list[ManifestRow]) -> object:
    """The manifest as a pyarrow table (the columns Ray Data starts from)."""
    import pyarrow as pa

    return pa.table(
        {
            "artwork_id": pa.array([r.artwork_id for r in rows], pa.int64()),
            "image_hash": pa.array([r.image_hash for r in rows], pa.string()),
            "path": pa.array([r.path for r in rows], pa.string()),
            "seed": pa.array([r.seed for r in rows], pa.int64()),
        }
    )
