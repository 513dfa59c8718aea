"""The clip store on a real SQLite file: FLAC round trip, keys, chosen clip, atomic writes."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from engine.engines.base import GeneratedClip
from engine.store import Artwork, Database
from engine.store.clips import ClipNotFound, ClipStore, clip_params_hash


class ToneEngine:
    """A tiny engine for store tests: a sine whose pitch depends on the seed."""

    name = "tone"
    model_version = "tone-1"

    def __init__(self, rate: int = 48000):
        self.rate = rate

    def params(self):
        return {"rate": self.rate}

    def generate(self, image, duration, seed):
        t = np.arange(int(duration * self.rate)) / self.rate
        mono = 0.3 * np.sin(2 * np.pi * (220 + seed) * t)
        audio = np.stack([mono, -mono], axis=1).astype(np.float32)
        return GeneratedClip(audio, self.rate, seed, duration, caption=f"tone {seed}")

    def generate_batch(self, images, duration, seeds):
        return [self.generate(i, duration, s) for i, s in zip(images, seeds, strict=True)]


@pytest.fixture
def db(db_path):
    db = Database(db_path)
    yield db
    db.close()


def _artwork(db, path="a.png", image_hash="a" * 64) -> int:
    def write(s):
        a = Artwork(path=path, image_hash=image_hash)
        s.add(a)
        s.flush()
        return a.id

    return db.run_write(write)


def test_put_find_load_round_trip(db):
    store, engine = ClipStore(db), ToneEngine()
    art = _artwork(db)
    clip = engine.generate(None, 5.0, 3)
    clip_id = store.put(image_hash="a" * 64, artwork_id=art, engine=engine, clip=clip)

    found = store.find("a" * 64, "tone", "tone-1", clip_params_hash(engine, 5.0))
    assert [c.id for c in found] == [clip_id]
    info = found[0]
    assert info.chosen and info.seed == 3 and info.channels == 2 and info.caption == "tone 3"
    audio, rate = store.load_audio(clip_id)
    assert rate == 48000 and audio.dtype == np.float32 and audio.shape == clip.audio.shape
    # 24-bit FLAC: within one LSB of the original.
    assert np.max(np.abs(audio - clip.audio)) < 2.0 / 2**23
    # A different duration or model version is a different key.
    assert store.find("a" * 64, "tone", "tone-1", clip_params_hash(engine, 6.0)) == []
    assert store.find("a" * 64, "tone", "tone-2", clip_params_hash(engine, 5.0)) == []


def test_first_clip_is_chosen_and_choose_switches(db):
    store, engine = ClipStore(db), ToneEngine()
    art = _artwork(db)
    ids = [
        store.put(image_hash="a" * 64, artwork_id=art, engine=engine, clip=engine.generate(None, 5.0, s))
        for s in (1, 2, 3)
    ]
    key = ("a" * 64, "tone", "tone-1", clip_params_hash(engine, 5.0))
    assert [c.chosen for c in store.find(*key)] == [True, False, False]
    assert store.playable_for(art).id == ids[0]
    store.choose(ids[2])
    chosen = [c.id for c in store.find(*key) if c.chosen]
    assert chosen == [ids[2]]
    assert store.playable_for(art, engine_name="tone").id == ids[2]
    with pytest.raises(ClipNotFound):
        store.choose(9999)


def test_playable_for_prefers_configured_engine_and_follows_image_hash(db):
    store = ClipStore(db)
    tone, other = ToneEngine(), ToneEngine(rate=24000)
    other.name = "other"
    art = _artwork(db)
    a = store.put(image_hash="a" * 64, artwork_id=art, engine=tone, clip=tone.generate(None, 5.0, 1))
    b = store.put(image_hash="a" * 64, artwork_id=art, engine=other, clip=other.generate(None, 5.0, 1))
    assert store.playable_for(art, engine_name="tone").id == a
    assert store.playable_for(art, engine_name="other").id == b
    # No clip for the configured engine yet: any clip of the image still plays.
    assert store.playable_for(art, engine_name="art2mus") is not None
    # A renamed file (a new artwork row, same image hash) finds the same clips.
    renamed = _artwork(db, path="renamed.png")
    assert store.playable_for(renamed, engine_name="tone").id == a
    assert store.playable_for(_artwork(db, path="b.png", image_hash="b" * 64)) is None


def test_delete_for_and_missing_clip(db):
    store, engine = ClipStore(db), ToneEngine()
    art = _artwork(db)
    cid = store.put(image_hash="a" * 64, artwork_id=art, engine=engine, clip=engine.generate(None, 5.0, 1))
    assert store.delete_for("a" * 64, engine_name="tone") == 1
    with pytest.raises(ClipNotFound, match=str(cid)):
        store.load_audio(cid)


def test_failed_write_leaves_no_clip(db, monkeypatch, db_path):
    """A crash inside the write transaction (after the row is added) leaves nothing behind."""
    store, engine = ClipStore(db), ToneEngine()
    from sqlalchemy.orm import Session

    real_flush = Session.flush

    def crash(self, *a, **k):
        real_flush(self, *a, **k)
        raise RuntimeError("power cut")

    monkeypatch.setattr(Session, "flush", crash)
    with pytest.raises(RuntimeError):
        store.put(image_hash="a" * 64, artwork_id=None, engine=engine, clip=engine.generate(None, 5.0, 1))
    monkeypatch.undo()
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT count(*) FROM clips").fetchone()[0] == 0


def test_same_key_and_seed_is_stored_once(db):
    """Two workers racing on one job store the clip once."""
    store, engine = ClipStore(db), ToneEngine()
    clip = engine.generate(None, 5.0, 9)
    first = store.put(image_hash="a" * 64, artwork_id=None, engine=engine, clip=clip)
    again = store.put(image_hash="a" * 64, artwork_id=None, engine=engine, clip=clip)
    assert first == again
    assert len(store.find("a" * 64, "tone", "tone-1", clip_params_hash(engine, 5.0))) == 1


def test_a_clip_carries_its_loop(db_path):
    """Stored clips keep their loop: the engine's, or the whole clip (both engines loop whole)."""
    import numpy as np

    from engine.engines.base import GeneratedClip
    from engine.loops import Loop
    from engine.store import Database
    from engine.store.clips import ClipStore

    class Engine:
        name, model_version = "tone", "1"

        def params(self):
            return {}

    db = Database(db_path)
    store = ClipStore(db)
    audio = np.zeros((4800, 2), np.float32)
    whole = store.put(image_hash="a" * 64, artwork_id=None, engine=Engine(),
                      clip=GeneratedClip(audio, 48000, 1, 0.1))  # fmt: skip
    part = store.put(image_hash="a" * 64, artwork_id=None, engine=Engine(),
                     clip=GeneratedClip(audio, 48000, 2, 0.1, loop=Loop(480, 4320)))  # fmt: skip
    assert store.get(whole).loop == Loop(0, 4800)
    assert store.get(part).loop == Loop(480, 4320)
    db.close()
