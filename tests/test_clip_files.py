"""Clip audio in files the store owns (engine/store/clip_files.py), on real SQLite files and a real
folder: content-addressed and atomic writes, the move of an old store's blobs (schema 7), which
resumes after an interruption and loses nothing, and the sweep of files no row names."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time

import numpy as np
import pytest

from engine.engines.base import GeneratedClip
from engine.engines.default.engine import DefaultEngine
from engine.store import Database
from engine.store.clip_files import ClipFiles, clip_folder, move_blobs_to_files, sweep_orphans
from engine.store.clips import ClipStore, decode_flac, encode_flac


def _tone(seed: int, seconds: float = 0.5, rate: int = 16000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * rng.uniform(200, 800) * t))[:, None].astype(np.float32)


def _clip(seed: int) -> GeneratedClip:
    return GeneratedClip(audio=_tone(seed), sample_rate=16000, duration=0.5, seed=seed, caption=f"c{seed}")


@pytest.fixture(scope="module")
def engine():
    return DefaultEngine()


def test_a_clip_is_a_content_addressed_file_and_its_row_names_it(db_path, engine):
    db = Database(db_path)
    store = ClipStore(db)
    clip_id = store.put(image_hash="a" * 64, artwork_id=None, engine=engine, clip=_clip(1))
    info = store.get(clip_id)
    path = store.files.path_for(info.audio_sha256)
    assert path.parent.parent == clip_folder(db_path) == db_path.with_name("art2mus.db.clips")
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == info.audio_sha256 and info.audio_size == len(data)
    assert data[:4] == b"fLaC"
    con = sqlite3.connect(db_path)  # the database holds metadata only
    assert con.execute("SELECT length(audio) FROM clips").fetchone() == (0,)
    con.close()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    audio, rate = store.load_audio(clip_id)
    assert rate == 16000 and np.allclose(audio, _tone(1), atol=1e-5)
    # The same audio again (another worker, another seed of an identical clip): one file.
    other = store.put(image_hash="b" * 64, artwork_id=None, engine=engine, clip=_clip(1))
    assert store.get(other).audio_sha256 == info.audio_sha256
    store.delete([clip_id])
    assert path.exists()  # still named by the other row
    store.delete([other])
    assert not path.exists()


def _version_5_store_with_blobs(db_path, count: int) -> dict[int, bytes]:
    """A store as schema 5 made it: the FLAC bytes in the clips table. Returns id → bytes."""
    Database(db_path).close()
    con = sqlite3.connect(db_path)
    blobs = {}
    for i in range(count):
        flac = encode_flac(_tone(i), 16000)
        cur = con.execute(
            "INSERT INTO clips (image_hash, engine, model_version, params_hash, params_json, seed, duration,"
            " sample_rate, channels, audio_format, audio, caption, chosen, created_at)"
            " VALUES (?, 'default', 'm', 'p', '{}', ?, 0.5, 16000, 1, 'flac', ?, '', 1, '2026-11-01')",
            (f"{i:064x}", i, flac),
        )
        blobs[cur.lastrowid] = flac
    # Undo schema 8, 7 and 6.
    con.execute("DROP INDEX ix_clips_audio_sha256")
    con.execute("ALTER TABLE clips DROP COLUMN audio_sha256")
    con.execute("ALTER TABLE clips DROP COLUMN audio_size")
    con.execute("DROP INDEX ix_jobs_claim")
    con.execute("CREATE INDEX ix_jobs_claim ON jobs (status, priority, id)")
    con.execute("DROP TABLE catalog_problems")  # added by step 8
    con.execute("PRAGMA user_version = 5")
    con.commit()
    con.close()
    return blobs


def _assert_every_clip_plays_its_own_audio(db, blobs):
    store = ClipStore(db)
    for clip_id, flac in blobs.items():
        audio, rate = store.load_audio(clip_id)
        expected, expected_rate = decode_flac(flac)
        assert rate == expected_rate and np.array_equal(audio, expected)
        assert store.audio_bytes(clip_id) == flac


def test_a_version_5_store_moves_its_blobs_into_files_losing_nothing(db_path):
    blobs = _version_5_store_with_blobs(db_path, 5)
    db = Database(db_path)
    assert db.migrated_from == 5
    _assert_every_clip_plays_its_own_audio(db, blobs)  # read from the blobs before the move
    assert not clip_folder(db_path).exists()

    batches = []
    assert move_blobs_to_files(db, batch=2, on_batch=batches.append) == 5
    assert batches == [2, 4, 5]  # a transaction per batch
    _assert_every_clip_plays_its_own_audio(db, blobs)  # now from the files
    con = sqlite3.connect(db_path)
    rows = con.execute("SELECT audio_sha256, audio_size, length(audio) FROM clips ORDER BY id").fetchall()
    con.close()
    assert [(sha, size, blob) for sha, size, blob in rows] == [
        (hashlib.sha256(flac).hexdigest(), len(flac), 0) for flac in blobs.values()
    ]
    assert sorted(f.sha256 for f in ClipFiles.of(db).files()) == sorted(r[0] for r in rows)
    assert move_blobs_to_files(db) == 0  # done: nothing more to move


def test_an_interrupted_move_resumes_where_it_stopped(db_path, monkeypatch):
    blobs = _version_5_store_with_blobs(db_path, 7)
    db = Database(db_path)
    real_write = ClipFiles.write
    calls = []

    def crash_on_the_fourth(self, data):
        calls.append(1)
        if len(calls) == 4:  # mid-batch: its earlier files are written, its rows not updated
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    monkeypatch.setattr(ClipFiles, "write", crash_on_the_fourth)
    with pytest.raises(OSError, match="No space"):
        move_blobs_to_files(db, batch=3)
    monkeypatch.undo()
    con = sqlite3.connect(db_path)
    states = con.execute(
        "SELECT audio_sha256 IS NOT NULL, length(audio) > 0 FROM clips ORDER BY id"
    ).fetchall()
    con.close()
    # The first batch moved; every other row still has its blob, none has neither.
    assert states == [(1, 0)] * 3 + [(0, 1)] * 4
    _assert_every_clip_plays_its_own_audio(Database(db_path), blobs)  # meanwhile, from either

    assert move_blobs_to_files(Database(db_path), batch=3) == 4  # restarted: the rest
    _assert_every_clip_plays_its_own_audio(Database(db_path), blobs)
    assert len(list(ClipFiles.of(db).files())) == 7


def test_files_no_row_names_are_swept_once_old(db_path, engine):
    db = Database(db_path)
    store = ClipStore(db)
    named = store.get(store.put(image_hash="a" * 64, artwork_id=None, engine=engine, clip=_clip(1)))
    young = store.files.write(b"a put in progress: its row comes next")
    old = store.files.write(b"left by a crash between file and row")
    long_ago = time.time() - 2 * 3600
    for sha in (old, named.audio_sha256):
        os.utime(store.files.path_for(sha), (long_ago, long_ago))
    assert sweep_orphans(db, dry_run=True)[0] == 1 and store.files.path_for(old).exists()
    files, freed = sweep_orphans(db)
    assert (files, freed) == (1, len(b"left by a crash between file and row"))
    assert not store.files.path_for(old).exists()
    assert store.files.path_for(young).exists() and store.files.path_for(named.audio_sha256).exists()


def test_the_engine_service_moves_an_old_stores_audio_while_it_serves(tmp_path, db_path, engine):
    import threading

    from engine.config import default_config
    from engine.service import EngineService
    from engine.worker import Worker

    blobs = _version_5_store_with_blobs(db_path, 3)
    config = default_config()
    config.collection.path = tmp_path / "collection"
    config.collection.path.mkdir()
    config.store.database = db_path
    config.store.min_free_megabytes = 0
    config.health.listen = ""
    db = Database(db_path)
    stop = threading.Event()
    service = threading.Thread(target=EngineService(Worker(db, engine, config)).run, args=(stop,))
    service.start()
    try:
        deadline = time.monotonic() + 60
        while len(list(ClipFiles.of(db).files())) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        service.join(30)
    assert not service.is_alive()
    _assert_every_clip_plays_its_own_audio(db, blobs)
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT count(*) FROM clips WHERE audio_sha256 IS NULL").fetchone() == (0,)
    con.close()
