"""Fixtures shared by the kiosk tests: a real store scanned from the demo paintings, clips
made by a tiny tone engine, a player, and a kiosk window on them (Qt offscreen)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

# The offscreen platform's screen is 800x800 by default; the kiosk is made for a wall screen
# (and Qt routes replayed touches by screen position), so give it one of 1920x1080.
SCREEN = Path(__file__).resolve().parent / "offscreen-1920x1080.json"
if os.environ.get("QT_QPA_PLATFORM", "offscreen") == "offscreen":
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={SCREEN}"

from engine.catalog.scanner import scan_collection
from engine.config import default_config
from engine.engines.base import GeneratedClip
from engine.store import Artwork, Database
from engine.store.clips import ClipStore


class ToneEngine:
    """A tiny engine (the Engine protocol): a chord whose root depends on the artwork."""

    name = "tone"
    model_version = "tone-1"

    def params(self):
        return {}

    def generate(self, image, duration, seed):
        rate = 24000
        t = np.arange(int(duration * rate)) / rate
        root = 110.0 * 2 ** ((seed % 12) / 12)
        mono = sum(0.08 * np.sin(2 * np.pi * root * r * t) for r in (1, 1.25, 1.5))
        audio = np.stack([mono, mono], axis=1).astype(np.float32)
        return GeneratedClip(audio, rate, seed, duration, caption=f"A tone chord on {root:.0f} Hz")

    def generate_batch(self, images, duration, seeds):
        return [self.generate(i, duration, s) for i, s in zip(images, seeds, strict=True)]


def kiosk_config(**kiosk):
    config = default_config()
    config.kiosk = dataclasses.replace(config.kiosk, **kiosk)
    return config


def artworks(db: Database) -> dict[str, tuple[int, str]]:
    """file name -> (artwork id, image hash)."""
    from sqlalchemy import select

    with db.read() as s:
        rows = s.execute(select(Artwork.path, Artwork.id, Artwork.image_hash)).all()
    return {path: (id_, h) for path, id_, h in rows}


def add_clip(db: Database, artwork_id: int, image_hash: str, seed: int = 0, duration: float = 5.0) -> int:
    clip = ToneEngine().generate(None, duration, seed)
    return ClipStore(db).put(image_hash=image_hash, artwork_id=artwork_id, engine=ToneEngine(), clip=clip)


@pytest.fixture
def store(collection: Path, db_path: Path) -> Database:
    """A real store scanned from a writable copy of the demo collection."""
    db = Database(db_path)
    summary = scan_collection(db, collection, default_config().catalog)
    assert summary.added == 8
    yield db
    db.close()


class RecordingPlayer:
    """The real player, with a record of what the kiosk asked of it."""

    def __init__(self, inner):
        self.inner = inner
        self.prepared: list[str] = []
        self.crossfades: list[str] = []
        self.volumes: list[float] = []

    def prepare(self, key, loader, **kw):
        self.prepared.append(key)
        return self.inner.prepare(key, loader, **kw)

    def is_prepared(self, key):
        return self.inner.is_prepared(key)

    def crossfade_to(self, clip, seconds=None):
        self.crossfades.append(clip.key)
        self.inner.crossfade_to(clip, seconds)

    def set_volume(self, v, ramp_seconds=None):
        self.volumes.append(v)
        self.inner.set_volume(v, ramp_seconds)

    @property
    def schedule(self):  # the quiet hours, replaced by the curator panel
        return self.inner.schedule

    @schedule.setter
    def schedule(self, value):
        self.inner.schedule = value

    def __getattr__(self, name):  # level, spectrum, telemetry, now_playing, close, ...
        return getattr(self.inner, name)


@pytest.fixture
def player(jack):
    """The real player on the session's private JACK dummy server (tests/jack_fixtures.py)."""
    from engine.config import AudioConfig
    from installation.audio import Player

    inner = Player(AudioConfig(crossfade_seconds=1.0), on_fatal=lambda reason: None)
    assert inner.start(), "the player could not open the JACK dummy device"
    rec = RecordingPlayer(inner)
    yield rec
    inner.close()


@pytest.fixture
def kiosk(qtbot, store, collection, player):
    """A locked-down kiosk window (1920x1080, offscreen) on the store, normal mode."""
    from installation.kiosk.app import build_window, create_application
    from installation.kiosk.backend import KioskBackend

    create_application()
    config = kiosk_config()
    config.collection.path = collection
    backend = KioskBackend(config, collection=None, db_path=store.path, player=player)
    window = build_window(backend, config, windowed=False)
    qtbot.addWidget(window)
    window.resize(1920, 1080)
    window.show()
    qtbot.waitExposed(window)
    window.backend = backend
    yield window
    from PyQt6.QtWidgets import QApplication

    QApplication.instance().removeEventFilter(window.filter)
    QApplication.instance().restoreOverrideCursor()
    window.allow_close = True
    window.close()
    window.thumbnails.wait_idle()
    window.playback.pool.waitForDone(5000)
    window.images.pool.waitForDone(5000)
    backend.db.close()
