"""The pregeneration worker on a real SQLite file and the real demo collection."""

from __future__ import annotations

import hashlib
import io
import multiprocessing as mp
import os
import shutil
import signal
import socket
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import soundfile as sf

from engine.catalog.scanner import scan_collection
from engine.config import default_config
from engine.engines.default.engine import DefaultEngine
from engine.store import Artwork, Database, JobStatus
from engine.store.clips import ClipStore
from engine.store.jobs import JobQueue
from engine.worker import Worker, candidate_seed


def make_config(collection: Path, db_path: Path, **engine):
    config = default_config()
    config.collection.path = collection
    config.store.database = db_path
    config.engine.name = "default"
    config.engine.duration = 5.0
    config.engine.candidates = 1  # one clip per artwork keeps the counts plain (auto: see below)
    for k, v in engine.items():
        setattr(config.engine, k, v)
    return config


@pytest.fixture(scope="module")
def engine():
    return DefaultEngine()


def scanned(collection, db_path, **engine):
    config = make_config(collection, db_path, **engine)
    db = Database(db_path)
    summary = scan_collection(db, collection, config.catalog)
    assert summary.invalid == 0
    return db, config


@pytest.mark.slow
def test_pregenerates_the_demo_collection_then_nothing(collection, db_path, engine):
    db, config = scanned(collection, db_path)
    worker = Worker(db, engine, config)
    assert worker.enqueue_missing() == 8
    assert worker.enqueue_missing() == 0  # already queued: no duplicates
    summary = worker.run_until_idle()
    assert (summary.done, summary.clips, summary.failed) == (8, 8, 0)

    store = ClipStore(db)
    with db.read() as s:
        artworks = s.query(Artwork).all()
    for a in artworks:
        info = store.playable_for(a.id, engine_name="default")
        assert info is not None and info.chosen and info.model_version == engine.model_version
        audio, rate = store.load_audio(info.id)
        assert rate == 48000 and audio.shape == (5 * 48000, 2)
        assert info.caption
    assert JobQueue(db).counts()[JobStatus.DONE] == 8

    # A second run, and a restarted worker (new process, new engine object), make nothing.
    assert worker.enqueue_missing() == 0
    assert worker.run_until_idle().clips == 0
    restarted = Worker(Database(db_path), DefaultEngine(), config)
    assert restarted.enqueue_missing() == 0

    # Renaming a painting keeps its clips (they are found by the image's content hash).
    (collection / "the-night-cafe.png").rename(collection / "night-cafe-renamed.png")
    scan_collection(db, collection, config.catalog)
    assert worker.enqueue_missing() == 0

    # A new model version (here: another SoundFont) needs new clips for everything.
    from engine.engines.default.renderer import bundled_soundfont

    sf2 = collection.parent / "other.sf2"
    sf2.write_bytes(bundled_soundfont().read_bytes() + b"\0")
    assert Worker(db, DefaultEngine(sf2), config).enqueue_missing() == 8


def test_candidates_have_derived_seeds_and_one_is_chosen(tmp_path, demo_dir, engine):
    collection = tmp_path / "one"
    collection.mkdir()
    shutil.copy(demo_dir / "church-at-auvers.png", collection)
    db, config = scanned(collection, tmp_path / "db.sqlite", candidates=3, seed=5)
    worker = Worker(db, engine, config)
    worker.enqueue_missing()
    assert worker.run_until_idle().clips == 3
    image_hash = hashlib.sha256((collection / "church-at-auvers.png").read_bytes()).hexdigest()
    found = ClipStore(db).find(image_hash, "default", engine.model_version, worker.params_hash)
    assert sorted(c.seed for c in found) == sorted(candidate_seed(image_hash, 5, i) for i in range(3))
    assert sum(c.chosen for c in found) == 1
    assert worker.enqueue_missing() == 0


@pytest.mark.slow
def test_unreadable_image_is_retried_then_failed_with_the_error(collection, db_path, engine):
    db, config = scanned(collection, db_path, max_attempts=2)
    broken = collection / "broken.png"
    data = (collection / "arched-hallway.png").read_bytes()[:3000]  # truncated PNG
    broken.write_bytes(data)

    def add(s):  # registered as ready (as if the file broke after the catalog read it)
        s.add(Artwork(path="broken.png", image_hash=hashlib.sha256(data).hexdigest(), status="ready"))

    db.run_write(add)
    worker = Worker(db, engine, config)
    assert worker.enqueue_missing() == 9
    summary = worker.run_until_idle()
    assert summary.done == 8 and summary.failed == 1 and summary.retrying == 1
    assert [Path(path).name for path, _ in summary.errors] == ["broken.png", "broken.png"]  # both attempts
    jobs = JobQueue(db)
    with db.read() as s:
        art = s.query(Artwork).filter_by(path="broken.png").one()
    job = jobs.latest_for(art.id)
    assert job.status == JobStatus.FAILED and job.attempts == 2
    assert "broken.png" in job.error
    assert jobs.status_for(art.id) == JobStatus.FAILED
    # A failed image is not queued again and again; the curator's file is untouched.
    assert worker.enqueue_missing() == 0
    assert broken.read_bytes() == data


# -- real worker processes ----------------------------------------------------------------


def _worker_process(collection, db_path, worker_id, engine_settings, start=None):
    config = make_config(Path(collection), Path(db_path), **engine_settings)
    db = Database(db_path)
    worker = Worker(db, DefaultEngine(), config, worker_id=worker_id)
    if start is not None:
        start.wait(60)
    worker.run_until_idle()


def _clip_count(db_path) -> int:
    con = sqlite3.connect(db_path)
    try:
        return con.execute("SELECT count(*) FROM clips").fetchone()[0]
    finally:
        con.close()


def _clip_rows(db_path):
    """(id, seed, duration, the FLAC bytes of its file) of every stored clip."""
    from engine.store.clip_files import ClipFiles, clip_folder

    con = sqlite3.connect(db_path)
    try:
        rows = con.execute("SELECT id, seed, duration, audio_sha256 FROM clips").fetchall()
    finally:
        con.close()
    files = ClipFiles(clip_folder(Path(db_path)))
    return [(i, seed, duration, files.read(sha)) for i, seed, duration, sha in rows]


@pytest.mark.slow
@pytest.mark.parametrize("victim_id", ["victim", None], ids=["stale-heartbeat", "restarted-service"])
def test_worker_killed_mid_clip_leaves_no_partial_clip_and_job_is_retried(tmp_path, demo_dir, victim_id):
    """SIGKILL mid-clip. Another worker takes the job over when its heartbeat is stale (a
    worker elsewhere), or at once when it sees the process is gone (same machine, own id)."""
    collection = tmp_path / "one"
    collection.mkdir()
    shutil.copy(demo_dir / "portrait-of-pere-tanguy.png", collection)
    db_path = tmp_path / "db.sqlite"
    settings = {"candidates": 4, "duration": 30.0, "stale_seconds": 10.0}
    db, config = scanned(collection, db_path, **settings)
    worker = Worker(db, DefaultEngine(), config, worker_id="survivor")
    assert worker.enqueue_missing() == 1

    ctx = mp.get_context("spawn")
    victim = ctx.Process(target=_worker_process, args=(str(collection), str(db_path), victim_id, settings))
    victim.start()
    try:
        # Kill it with SIGKILL as soon as its first clip is stored: it is then busy with the
        # second clip of the job.
        deadline = time.monotonic() + 120
        while _clip_count(db_path) < 1:
            assert victim.is_alive(), "worker process ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(30)
    finally:
        if victim.is_alive():
            victim.kill()
    assert victim.exitcode == -signal.SIGKILL

    rows = _clip_rows(db_path)
    assert 1 <= len(rows) < 4
    for _, _, duration, audio in rows:  # every stored clip is whole
        decoded, rate = sf.read(io.BytesIO(audio), dtype="float32")
        assert decoded.shape == (int(duration * rate), 2)
    queue = JobQueue(db)
    job = queue.latest_for(1)
    assert job.status == JobStatus.RUNNING
    if victim_id is not None:
        assert job.claimed_by == victim_id
        # A worker id this machine cannot check: its job returns when the heartbeat is stale.
        worker.stale_seconds = 0.5
        time.sleep(1.0)
    else:
        assert job.claimed_by.startswith(f"{socket.gethostname()}:{victim.pid}:")
        # Same machine, the process is gone: taken back at once, long before it is stale.
        worker.stale_seconds = 600
        assert worker.recover_orphans() == 1
        back = queue.get(job.id)
        assert back.status == JobStatus.QUEUED and "ended during attempt 1" in back.error
    summary = worker.run_until_idle()
    assert summary.done == 1
    job = queue.get(job.id)
    # The kill was the machine's fault, not the artwork's: it used no attempt.
    assert job.status == JobStatus.DONE and (job.attempts, job.faults) == (1, 1)
    seeds = [seed for _, seed, _, _ in _clip_rows(db_path)]
    assert len(seeds) == 4 and len(set(seeds)) == 4  # the missing candidates, none twice


@pytest.mark.slow
def test_two_worker_processes_share_the_queue_without_duplicates(collection, db_path):
    settings = {"duration": 5.0}
    db, config = scanned(collection, db_path, **settings)
    assert Worker(db, DefaultEngine(), config).enqueue_missing() == 8
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [
        ctx.Process(target=_worker_process, args=(str(collection), str(db_path), f"w{k}", settings, start))
        for k in range(2)
    ]
    for p in procs:
        p.start()
    time.sleep(0.5)
    start.set()
    for p in procs:
        p.join(300)
    assert [p.exitcode for p in procs] == [0, 0]
    con = sqlite3.connect(db_path)
    jobs = con.execute("SELECT status, attempts, claimed_by FROM jobs").fetchall()
    assert len(jobs) == 8
    assert all(status == "done" and attempts == 1 for status, attempts, _ in jobs)
    clips = con.execute("SELECT image_hash, seed FROM clips").fetchall()
    assert len(clips) == 8 and len(set(clips)) == 8


def test_auto_candidates_give_the_curator_a_choice_with_the_default_engine(tmp_path, demo_dir, engine):
    from engine.worker import candidates_for

    assert default_config().engine.candidates == 0  # auto
    art2mus, scored = (
        SimpleNamespace(name="art2mus", scorer=None),
        SimpleNamespace(name="art2mus", scorer=max),
    )
    assert candidates_for(0, engine) == 2 and candidates_for(0, art2mus) == 1
    assert candidates_for(0, scored) == 3  # the authors' best of 3, ranked by the scorer
    assert candidates_for(3, art2mus) == 3
    collection = tmp_path / "one"
    collection.mkdir()
    shutil.copy(demo_dir / "church-at-auvers.png", collection)
    db, config = scanned(collection, tmp_path / "db.sqlite", candidates=0)
    worker = Worker(db, engine, config)
    worker.enqueue_missing()
    assert worker.run_until_idle().clips == 2


def test_regenerate_adds_new_takes_beside_the_chosen_clip(tmp_path, demo_dir, engine):
    collection = tmp_path / "one"
    collection.mkdir()
    shutil.copy(demo_dir / "harvest-at-la-crau.png", collection)
    db, config = scanned(collection, tmp_path / "db.sqlite")
    worker = Worker(db, engine, config)
    worker.enqueue_missing()
    worker.run_until_idle()
    store = ClipStore(db)
    before = store.clips_for_image(
        hashlib.sha256((collection / "harvest-at-la-crau.png").read_bytes()).hexdigest()
    )
    (old,) = [c for c in before if c.chosen]
    JobQueue(db).enqueue(
        "regenerate", artwork_id=old.artwork_id, image_hash=old.image_hash, engine="", priority=50
    )
    made = worker.run_until_idle().clips
    assert made == config.engine.candidates
    clips = {c.id: c for c in store.clips_for_image(old.image_hash)}
    assert {c.id for c in before} <= set(clips) and clips[old.id].chosen  # nothing lost
    new = [c for c in clips.values() if c.id not in {b.id for b in before}]
    assert len(new) == made and all(not c.chosen and c.seed not in {b.seed for b in before} for c in new)
    assert store.playable_for(old.artwork_id).id == old.id
    store.choose(new[0].id)  # the curator picks
    assert store.playable_for(old.artwork_id).id == new[0].id
