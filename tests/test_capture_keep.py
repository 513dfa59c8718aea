"""Captures in the catalog are kept only as long as configured, and purged with their clips."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from capture_scenes import make_scene
from sqlalchemy import select

from engine.capture.keep import add_capture, enqueue_capture, purge_captures
from engine.store import Artwork, Clip, Database, Job
from engine.store.jobs import JobQueue
from engine.store.models import utcnow

DEMO = Path(__file__).resolve().parent.parent / "content" / "demo"


def _clip_for(db: Database, image_hash: str, artwork_id: int | None) -> None:
    def write(s):
        s.add(
            Clip(
                image_hash=image_hash, artwork_id=artwork_id, engine="default", model_version="v",
                params_hash="p", duration=1.0, sample_rate=48000, audio=b"x",
            )
        )  # fmt: skip

    db.run_write(write)


def test_purge_removes_old_captures_their_clips_and_files_only(tmp_path):
    db = Database(tmp_path / "art2mus.db")
    folder = tmp_path / "captures"
    crop = make_scene(sorted(DEMO.glob("*.png"))[0], 1).image[100:400, 300:600]
    old = add_capture(db, crop, folder, when=utcnow() - timedelta(hours=5))
    new = add_capture(db, np.ascontiguousarray(crop[::-1]), folder)
    enqueue_capture(JobQueue(db), old)
    _clip_for(db, old.image_hash, old.artwork_id)
    _clip_for(db, new.image_hash, new.artwork_id)
    stray = folder / "notes.txt"  # not ours: never deleted
    stray.write_text("curator's note")

    assert purge_captures(db, folder, older_than=timedelta(hours=1)) == 1
    with db.read() as s:
        assert [a.id for a in s.scalars(select(Artwork))] == [new.artwork_id]
        assert [c.image_hash for c in s.scalars(select(Clip))] == [new.image_hash]
        assert s.scalar(select(Job)) is None  # the job went with its artwork
    assert not old.path.exists() and new.path.exists() and stray.exists()

    assert purge_captures(db, folder) == 1  # "until the kiosk restarts": all of them
    assert not new.path.exists() and stray.exists()
    with db.read() as s:
        assert s.scalar(select(Clip)) is None


def test_a_clip_shared_with_a_collection_artwork_is_kept(tmp_path):
    db = Database(tmp_path / "art2mus.db")
    folder = tmp_path / "captures"
    stored = add_capture(db, np.full((64, 64, 3), 90, np.uint8), folder)
    db.run_write(lambda s: s.add(Artwork(image_hash=stored.image_hash, path="same.png", source="collection")))
    _clip_for(db, stored.image_hash, None)
    assert purge_captures(db, folder) == 1
    with db.read() as s:
        assert s.scalar(select(Clip)) is not None


class _QuietPlayer:
    def close(self, fade_seconds=0.0):
        pass


@pytest.mark.parametrize(("keep_hours", "left"), [(0.0, 0), (2.0, 1)])
def test_the_kiosk_purges_captures_when_it_starts(tmp_path, keep_hours, left):
    from engine.config import CaptureConfig, default_config
    from installation.kiosk.backend import KioskBackend

    folder = tmp_path / "captures"
    db_path = tmp_path / "art2mus.db"
    db = Database(db_path)
    add_capture(db, np.full((64, 64, 3), 30, np.uint8), folder, when=utcnow() - timedelta(hours=5))
    add_capture(db, np.full((64, 64, 3), 90, np.uint8), folder)
    db.close()
    config = default_config()
    config = dataclasses.replace(config, capture=CaptureConfig(folder=folder, keep_hours=keep_hours))
    backend = KioskBackend(config, db_path=db_path, player=_QuietPlayer())
    backend.start()
    with backend.db.read() as s:
        assert len(s.scalars(select(Artwork)).all()) == left
    assert len(list(folder.glob("capture-*.png"))) == left
    backend.close()


def test_config_check_names_a_capture_folder_that_cannot_be_written(tmp_path):
    from engine.config import load_config
    from engine.config_checks import path_problems

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    config_file = tmp_path / "art2mus.toml"
    config_file.write_text(f'[collection]\npath = "{tmp_path}"\n[capture]\nfolder = "{blocker}"\n')
    problems = path_problems(load_config(config_file))
    assert any("capture.folder" in p and "is not a folder" in p for p in problems), problems
