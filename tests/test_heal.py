"""Drills of issue 15: the store heals, and machine faults are not artworks' failures.

Real SQLite files, real processes (`python -m art2mus ...`), a real full disk on a small
tmpfs (skipped where it cannot be mounted). Each drill checks what a technician reads: one
plain line per event, no traceback for an expected fault.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from engine.catalog.scanner import scan_collection
from engine.config import default_config
from engine.engines.default.engine import DefaultEngine
from engine.store import Database, Job, JobStatus
from engine.store.clips import ClipNotFound, ClipStore
from engine.store.conditions import active_conditions
from engine.store.faults import Fault
from engine.store.jobs import JobQueue
from engine.worker import Worker, _ClockWatch

ROOT = Path(__file__).resolve().parent.parent
STAMP = r"\d{8}T\d{6}Z"


def make_config(collection: Path, db_path: Path, **engine):
    config = default_config()
    config.collection.path = collection
    config.store.database = db_path
    config.store.min_free_megabytes = 0
    config.engine.name = "default"
    config.engine.duration = 5.0
    config.engine.candidates = (
        1  # one clip per artwork keeps the counts plain (0, auto: tests/test_worker.py)
    )
    for k, v in engine.items():
        setattr(config.engine, k, v)
    return config


def one_painting(tmp_path: Path, demo_dir: Path, name: str = "harvest-at-la-crau.png") -> Path:
    folder = tmp_path / "collection"
    folder.mkdir(exist_ok=True)
    shutil.copy(demo_dir / name, folder)
    return folder


def hashes(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def art2mus(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "art2mus", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def stored(
    tmp_path_factory,
) -> Path:
    """A database of the demo collection with one clip, made once for the damage drills."""
    tmp = tmp_path_factory.mktemp("stored")
    db_path = tmp / "base.db"
    collection = ROOT / "content" / "demo"
    db = Database(db_path)
    scan_collection(db, collection, default_config().catalog)
    worker = Worker(db, DefaultEngine(), make_config(collection, db_path))
    worker.enqueue_missing()
    worker.run_once()
    db.checkpoint()
    db.close()
    return db_path


def damage(path: Path, how: str) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        if how == "truncated":
            fh.truncate(size // 2)
        elif how == "header":
            fh.write(b"\xff" * 100)
        else:  # 4 KB of garbage mid-file, on a page boundary (a bad sector)
            fh.seek(size // 2 - (size // 2) % 4096)
            fh.write(os.urandom(4096))


# -- a store that heals -------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("how", ["truncated", "header", "mid-file"])
def test_a_damaged_database_is_set_aside_and_rebuilt_from_the_collection(tmp_path, stored, collection, how):
    db_path = tmp_path / "art2mus.db"
    copy_store(stored, db_path)
    damage(db_path, how)
    damaged = db_path.read_bytes()
    before = hashes(collection)

    run = art2mus("catalog", "scan", str(collection), "--db", str(db_path))

    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    lines = [line for line in run.stderr.splitlines() if "damaged" in line]
    assert len(lines) == 1 and str(db_path) in lines[0], run.stderr  # one plain line naming the file
    # Its -wal and -shm, if any, go aside with it under the same name.
    (aside,) = [p for p in tmp_path.glob("art2mus.db.damaged-*") if not p.name.endswith(("-wal", "-shm"))]
    assert re.fullmatch(rf"art2mus\.db\.damaged-{STAMP}", aside.name) and str(aside) in lines[0]
    assert aside.read_bytes() == damaged  # kept as it was, for whoever wants to look
    con = sqlite3.connect(db_path)
    assert con.execute("PRAGMA quick_check").fetchone() == ("ok",)
    assert con.execute("SELECT count(*) FROM artworks WHERE status = 'ready'").fetchone() == (8,)
    con.close()
    assert hashes(collection) == before  # the collection is never touched


def test_a_sound_database_is_left_alone_and_a_locked_one_is_not_damaged(tmp_path, stored):
    db_path = tmp_path / "art2mus.db"
    copy_store(stored, db_path)
    Database(db_path, check="quick_check").close()
    con = sqlite3.connect(db_path)
    con.execute("BEGIN EXCLUSIVE")  # another process holds the file: a fault, never damage
    try:
        from engine.store.health import check_file

        assert check_file(db_path, "quick_check", timeout_s=0.1) is None
    finally:
        con.rollback()
        con.close()
    assert list(tmp_path.glob("*.damaged-*")) == []


def test_damage_found_while_serving_heals_and_the_other_process_follows(tmp_path, demo_dir, caplog):
    """A database damaged under a running service (integrity check on its schedule): set aside,
    made anew, rebuilt; a second Database on the same file (the kiosk) reconnects to the new one."""
    collection = one_painting(tmp_path, demo_dir)
    db_path = tmp_path / "art2mus.db"
    db = Database(db_path)
    scan_collection(db, collection, default_config().catalog)
    kiosk = Database(db_path)
    worker = Worker(db, DefaultEngine(), make_config(collection, db_path))
    rebuilt: list[bool] = []
    worker.on_rebuilt = lambda: (
        rebuilt.append(True),
        scan_collection(db, collection, default_config().catalog),
    )
    worker.run_until_idle()
    with db.engine.connect() as conn:  # every page in the file itself, none only in the -wal
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    damage(db_path, "mid-file")
    caplog.set_level(logging.INFO)
    worker._integrity_check()
    assert rebuilt == [True] and len(db.set_aside) == 1
    assert worker.run_until_idle().done == 1  # the clip is made again
    with kiosk.read() as s:  # the kiosk's old connections pointed at the damaged file
        assert s.scalar(__import__("sqlalchemy").text("SELECT count(*) FROM clips")) == 1
    assert sum("is damaged" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("how", ["damaged", "missing"])
def test_a_clip_that_does_not_decode_is_quarantined_and_made_again(tmp_path, demo_dir, caplog, how):
    collection = one_painting(tmp_path, demo_dir)
    db_path = tmp_path / "art2mus.db"
    db = Database(db_path)
    scan_collection(db, collection, default_config().catalog)
    worker = Worker(db, DefaultEngine(), make_config(collection, db_path))
    worker.enqueue_missing()
    worker.run_until_idle()
    store = ClipStore(db)
    clip = store.playable_for(1)
    file = store.files.path_for(clip.audio_sha256)
    if how == "damaged":  # 4 KB of garbage inside the clip's file (a bad sector)
        data = file.read_bytes()
        file.write_bytes(data[:200_000] + os.urandom(4096) + data[204_096:])
    else:  # a person or a disk lost it
        file.unlink()

    with pytest.raises(ClipNotFound, match="quarantined"):  # the kiosk treats it as missing
        store.load_audio(clip.id)
    kept = list((tmp_path / "art2mus.db.quarantine").glob("*"))
    if how == "damaged":  # the bytes are kept for whoever wants to look
        assert len(kept) == 1 and re.fullmatch(rf"clip-{clip.id}-{STAMP}\.flac", kept[0].name)
    else:
        assert kept == []
    assert not file.exists()  # no row names it any more
    assert store.playable_for(1) is None  # missing now: the kiosk plays the nearest clip
    assert sum("quarantined" in r.getMessage() for r in caplog.records) == 1
    worker._maintain()  # the service's housekeeping queues the artwork again
    assert worker.run_until_idle().done == 1
    audio, rate = store.load_audio(store.playable_for(1).id)
    assert audio.shape[0] == 5 * rate


# -- faults are not failures --------------------------------------------------------------


def test_a_clock_jump_counts_no_attempt_and_is_said_once(tmp_path, demo_dir, caplog):
    collection = one_painting(tmp_path, demo_dir)
    db_path = tmp_path / "art2mus.db"
    db = Database(db_path)
    scan_collection(db, collection, default_config().catalog)
    worker = Worker(db, DefaultEngine(), make_config(collection, db_path, max_attempts=1))
    worker.enqueue_missing()
    jobs = JobQueue(db)
    job = jobs.claim("elsewhere:1:abc")  # a worker on another machine holds it
    # The clock jumps an hour ahead: that worker's last heartbeat now looks an hour old.
    db.run_change(
        update(Job).where(Job.id == job.id).values(heartbeat_at=job.heartbeat_at - timedelta(hours=1))
    )
    wall = [time.time()]
    worker._clock = _ClockWatch(wall=lambda: wall[0])
    wall[0] += 3600
    caplog.set_level(logging.INFO)
    worker._maintain()
    assert worker.run_until_idle().done == 1
    done = jobs.get(job.id)
    assert done.status == JobStatus.DONE and (done.attempts, done.faults) == (1, 1)  # max_attempts = 1
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "clock jumped by +3600 s" in warnings[0]


def test_failed_artworks_are_retried_after_their_cool_down(tmp_path, demo_dir):
    collection = one_painting(tmp_path, demo_dir)
    db_path = tmp_path / "art2mus.db"
    db = Database(db_path)
    scan_collection(db, collection, default_config().catalog)
    (painting,) = collection.glob("*.png")
    good = painting.read_bytes()
    worker = Worker(db, DefaultEngine(), make_config(collection, db_path, max_attempts=1))
    worker.enqueue_missing()
    painting.write_bytes(good[:3000])  # broken after the catalog read it: the artwork's own failure
    os.utime(painting, ns=(1, 1))
    with pytest.MonkeyPatch.context() as mp:  # ...but with the hash the job expects
        mp.setattr("engine.catalog.images.sha256_file", lambda p: hashlib.sha256(good).hexdigest())
        assert worker.run_until_idle().failed == 1
    jobs = JobQueue(db)
    assert jobs.status_for(1) == JobStatus.FAILED
    worker.failed_retry_s = 3600
    worker._maintain()
    assert jobs.status_for(1) == JobStatus.FAILED  # still cooling down
    painting.write_bytes(good)  # the curator fixed it meanwhile
    worker.failed_retry_s, worker._maintained_at = 0.0, -1e9
    time.sleep(0.01)
    worker._maintain()
    assert worker.run_until_idle().done == 1 and jobs.status_for(1) == JobStatus.DONE


def _worker_process(collection: str, db_path: str, settings: dict) -> None:
    config = make_config(Path(collection), Path(db_path), **settings)
    Worker(Database(db_path), DefaultEngine(), config).run_until_idle()


@pytest.mark.slow
def test_killed_three_times_mid_clip_the_artwork_still_gets_its_music(tmp_path, demo_dir):
    """Three power cuts (kill -9) during one artwork's clip, with the default max_attempts = 3:
    each restarted worker takes the job back at once without counting an attempt."""
    import multiprocessing as mp

    collection = one_painting(tmp_path, demo_dir)
    db_path = tmp_path / "art2mus.db"
    db = Database(db_path)
    scan_collection(db, collection, default_config().catalog)
    settings = {"duration": 10.0}
    worker = Worker(db, DefaultEngine(), make_config(collection, db_path, **settings))
    worker.enqueue_missing()
    jobs = JobQueue(db)
    ctx = mp.get_context("spawn")
    for _kill in range(3):
        victim = ctx.Process(target=_worker_process, args=(str(collection), str(db_path), settings))
        victim.start()
        deadline = time.monotonic() + 60
        while not (jobs.get(1).status == JobStatus.RUNNING and f":{victim.pid}:" in jobs.get(1).claimed_by):
            assert time.monotonic() < deadline and victim.is_alive()
            time.sleep(0.02)
        time.sleep(0.3)  # mid-clip
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(30)
        assert ClipStore(db).count() == 0  # nothing half-written
        # A restart takes it back at once (here without the back-off it earned, to be quick).
        assert worker.recover_orphans() == 1
        db.run_change(update(Job).where(Job.id == 1).values(not_before=None))
    assert worker.run_until_idle().done == 1
    job = jobs.get(1)
    assert job.status == JobStatus.DONE and (job.attempts, job.faults) == (1, 3)
    assert ClipStore(db).playable_for(1) is not None


# -- a full disk ---------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, megabytes: int):
    """A small tmpfs at ``path`` (root only; skipped elsewhere), unmounted at the end."""
    path.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)], capture_output=True
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path, leave_bytes: int) -> Path:
    """A file that leaves ``leave_bytes`` free on ``folder``'s file system."""
    filler = folder / "filler"
    free = shutil.disk_usage(folder).free
    with open(filler, "wb") as fh:
        fh.truncate(0)
        fh.write(b"\0" * max(0, free - leave_bytes))
    return filler


def two_paintings(tmp_path: Path, demo_dir: Path) -> Path:
    folder = one_painting(tmp_path, demo_dir)
    shutil.copy(demo_dir / "the-night-cafe.png", folder)
    return folder


@pytest.mark.slow
def test_a_full_disk_pauses_the_service_fails_nothing_and_it_resumes(tmp_path, demo_dir):
    collection = two_paintings(tmp_path, demo_dir)
    with tmpfs(tmp_path / "disk", 8) as disk:
        db_path = disk / "art2mus.db"
        db = Database(db_path)
        scan_collection(db, collection, default_config().catalog)
        db.close()
        filler = fill(disk, 300_000)  # room for the queue, not for a clip (~900 KB)
        config = tmp_path / "art2mus.toml"
        config.write_text(
            f'[collection]\npath = "{collection}"\n[store]\ndatabase = "{db_path}"\nmin_free_megabytes = 0\n'
            '[engine]\nname = "default"\nduration = 5.0\n[catalog]\nsettle_seconds = 0.3\n'
        )
        log_path = tmp_path / "serve.log"
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        with open(log_path, "w") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "art2mus", "-c", str(config), "engine", "serve"],
                cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            wait_for(lambda: "condition disk-full started" in log_path.read_text(), 90, proc)
            time.sleep(4)  # a few retries with back-off
            con = sqlite3.connect(db_path)
            jobs = con.execute("SELECT status, attempts FROM jobs").fetchall()
            con.close()
            assert jobs and all(status != "failed" and attempts <= 1 for status, attempts in jobs), jobs
            filler.unlink()  # space returns
            wait_for(lambda: "condition disk-full ended" in log_path.read_text(), 90, proc)
            wait_for(lambda: clip_count(db_path) == 2, 60, proc)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        log = log_path.read_text()
        assert "Traceback" not in log, log
        assert (
            log.count("condition disk-full started") == 1 and log.count("condition disk-full ended") == 1
        ), log
        (started,) = [line for line in log.splitlines() if "condition disk-full started" in line]
        # One line, SQLite's words or the clip file's (the audio is written before its row).
        assert f"{db_path}: " in started
        assert started.endswith(("database or disk is full", "[Errno 28] No space left on device"))
        assert "Background on this error" not in log
        con = sqlite3.connect(db_path)
        assert con.execute("SELECT status, attempts FROM jobs").fetchall() == [("done", 1), ("done", 1)]
        con.close()


def test_low_disk_space_pauses_generation_until_space_returns(tmp_path, demo_dir, caplog):
    collection = one_painting(tmp_path, demo_dir)
    with tmpfs(tmp_path / "disk", 16) as disk:
        db_path = disk / "art2mus.db"
        db = Database(db_path)
        scan_collection(db, collection, default_config().catalog)
        config = make_config(collection, db_path)
        config.store.min_free_megabytes = 20  # more than the whole disk
        worker = Worker(db, DefaultEngine(), config)
        worker.disk_check_s = 0.1
        caplog.set_level(logging.INFO)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop, 0.1))
        thread.start()
        try:
            wait_for(lambda: worker.conditions.is_active(Fault.DISK_LOW), 30)
            time.sleep(0.5)
            assert ClipStore(db).count() == 0 and JobQueue(db).counts()[JobStatus.RUNNING] == 0
            (cond,) = active_conditions(db)  # what `art2mus status` and /health show
            assert cond.name == "disk-low" and "min_free_megabytes = 20" in cond.message
            subprocess.run(["mount", "-o", "remount,size=128m", str(disk)], check=True)
            wait_for(lambda: ClipStore(db).count() == 1, 60)
        finally:
            stop.set()
            thread.join(30)
            db.close()
        messages = [r.getMessage() for r in caplog.records]
        assert sum("condition disk-low started" in m for m in messages) == 1
        assert sum("condition disk-low ended" in m for m in messages) == 1


def wait_for(predicate, seconds: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert proc is None or proc.poll() is None, "the process ended"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def clip_count(db_path: Path) -> int:
    con = sqlite3.connect(db_path)
    try:
        return con.execute("SELECT count(*) FROM clips").fetchone()[0]
    finally:
        con.close()


# -- bounded storage -----------------------------------------------------------------------


@pytest.mark.slow
def test_store_prune_dry_run_then_prune_keeps_what_plays_and_returns_the_space(tmp_path, stored):
    db_path = tmp_path / "art2mus.db"
    copy_store(stored, db_path)
    db = Database(db_path)
    store = ClipStore(db)
    kept = store.get(1)
    gone_file = store.files.write(os.urandom(500_000))
    orphan = store.files.write(os.urandom(300_000))  # a crash between file and row
    old_enough = time.time() - 2 * 3600
    os.utime(store.files.path_for(orphan), (old_enough, old_enough))
    with db.write() as s:
        # A superseded candidate of the same image (sharing its file), and the clip of a
        # painting gone long ago.
        from engine.store import Artwork, Clip

        old = Clip(**{c: getattr(s.get(Clip, kept.id), c) for c in ("image_hash", "artwork_id", "params_hash", "duration", "sample_rate", "audio_sha256", "audio_size")}, engine="default", model_version="older", seed=1, chosen=False, created_at=kept.created_at - timedelta(days=1))  # fmt: skip
        s.add(old)
        gone = s.get(Artwork, 2)
        gone.status, gone.updated_at = "missing", gone.updated_at - timedelta(days=400)
        s.add(Clip(image_hash=gone.image_hash, artwork_id=2, engine="default", model_version="m", params_hash="p", duration=5.0, sample_rate=48000, audio_sha256=gone_file, audio_size=500_000, chosen=True))  # fmt: skip
    db.close()

    dry = art2mus("store", "prune", "--dry-run", "--db", str(db_path))
    assert dry.returncode == 0, dry.stderr
    assert "would remove 2 clips" in dry.stdout and "superseded" in dry.stdout and "missing" in dry.stdout
    assert "would remove 1 clip files no clip names" in dry.stdout
    assert clip_count(db_path) == 3  # nothing changed
    assert store.files.path_for(orphan).exists() and store.files.path_for(gone_file).exists()

    run = art2mus(
        "--config", str(ROOT / "content" / "art2mus.toml"), "store", "prune", "--db", str(db_path), "--json"
    )
    assert run.returncode == 0, run.stderr
    import json

    result = json.loads(run.stdout)
    assert result["deleted"] == 2 and result["orphan_files"] == 1 and result["freed_bytes"] >= 800_000
    # The chosen one stays, and so does the file it shared with the superseded one.
    assert clip_count(db_path) == 1 and ClipStore(Database(db_path)).get(kept.id) is not None
    assert store.files.path_for(kept.audio_sha256).exists()
    assert not store.files.path_for(gone_file).exists() and not store.files.path_for(orphan).exists()
    assert ClipStore(Database(db_path)).load_audio(kept.id)[0].shape[0] > 0


def copy_store(source: Path, target: Path) -> None:
    """A database and its clip folder (the audio lives in files beside it)."""
    from engine.store.clip_files import clip_folder

    shutil.copy(source, target)
    if clip_folder(source).exists():
        shutil.copytree(clip_folder(source), clip_folder(target))


@pytest.mark.slow
def test_processes_starting_at_once_on_a_damaged_database_set_it_aside_once(tmp_path, stored):
    db_path = tmp_path / "art2mus.db"
    copy_store(stored, db_path)
    damage(db_path, "header")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "art2mus", "catalog", "list", "--db", str(db_path)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert sum("is damaged" in err for _, err in outs) == 1, outs
    assert (
        len([p for p in tmp_path.glob("art2mus.db.damaged-*") if not p.name.endswith(("-wal", "-shm"))]) == 1
    )
    con = sqlite3.connect(db_path)
    assert con.execute("PRAGMA quick_check").fetchone() == ("ok",)
    con.close()


def test_the_kiosk_plays_the_nearest_clip_while_a_quarantined_one_is_made_again(tmp_path, demo_dir):
    from installation.kiosk.services import KioskServices

    collection = two_paintings(tmp_path, demo_dir)
    db_path = tmp_path / "art2mus.db"
    db = Database(db_path)
    scan_collection(db, collection, default_config().catalog)
    worker = Worker(db, DefaultEngine(), make_config(collection, db_path))
    worker.enqueue_missing()
    assert worker.run_until_idle().done == 2
    store = ClipStore(db)
    services = KioskServices(
        db, collection, player=None, clip_store=store, job_queue=JobQueue(db), engine_info=None
    )
    own = services.clip_choice(1)
    assert own.own
    store.files.path_for(own.clip.audio_sha256).write_bytes(b"fLaC" + os.urandom(5000))
    with pytest.raises(ClipNotFound):
        store.load_audio(own.clip.id)
    fallback = services.clip_choice(1)
    assert not fallback.own and fallback.artwork_id == 2  # the nearest ready clip plays meanwhile


def test_the_kiosk_reads_the_new_database_after_another_process_heals(tmp_path, demo_dir):
    from engine.store.health import set_aside
    from installation.kiosk.services import KioskServices

    collection = two_paintings(tmp_path, demo_dir)
    db_path = tmp_path / "art2mus.db"
    db = Database(db_path)
    scan_collection(db, collection, default_config().catalog)
    services = KioskServices(db, collection, player=None, clip_store=None, job_queue=None, engine_info=None)
    assert len(services.entries()) == 2
    before = services.signature()
    # What the engine service does when it finds the file damaged (engine/store/health.py):
    # the file is moved aside and a new one made, here with one painting fewer.
    db.close()
    set_aside(db_path, "drill")
    (collection / sorted(p.name for p in collection.glob("*.png"))[0]).unlink()
    healed = Database(db_path)
    scan_collection(healed, collection, default_config().catalog)
    healed.close()
    assert len(services.entries()) == 1  # the raw connection follows the new inode
    assert services.signature() != before  # so the window re-reads the catalog
    assert services.thumbnail(services.entries()[0].id) is not None


# A process that holds the database (as the engine service does) while its -wal is deleted:
# it writes row 1, waits for "go", writes row 2 into the (now deleted) -wal, reads until it has
# noticed and recovered, then writes row 4 once told "done".
_HOLDER = r"""
import sys, time
from pathlib import Path
from sqlalchemy import text
from engine.store import Database
path, flags = Path(sys.argv[1]), Path(sys.argv[2])
db = Database(path)
db.run_write(lambda s: s.execute(text("CREATE TABLE drill (x INTEGER)")))
db.run_write(lambda s: s.execute(text("INSERT INTO drill VALUES (1)")))  # its pool keeps the -wal open
(flags / "ready").touch()
while not (flags / "go").exists():
    time.sleep(0.05)
db.run_write(lambda s: s.execute(text("INSERT INTO drill VALUES (2)")))
deadline = time.monotonic() + 20
while not (flags / "done").exists() and time.monotonic() < deadline:
    with db.read() as s:  # what the engine's loop does between jobs
        s.execute(text("SELECT count(*) FROM drill")).scalar()
    time.sleep(0.1)
db.run_write(lambda s: s.execute(text("INSERT INTO drill VALUES (4)")))
db.close()
"""


@pytest.mark.slow
def test_a_wal_deleted_under_a_running_process_loses_nothing(tmp_path):
    """The -wal deleted by hand while the service holds it: a process started afterwards (the
    kiosk restarting, a command) still writes, and every committed row ends in the file."""
    from sqlalchemy import text

    path, flags = tmp_path / "art2mus.db", tmp_path / "flags"
    flags.mkdir()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path), str(flags)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (flags / "ready").exists():
            assert holder.poll() is None and time.monotonic() < deadline, holder.stderr.read()
            time.sleep(0.05)
        Path(f"{path}-wal").unlink()
        (flags / "go").touch()
        late = Database(path)  # opened after the deletion: a new, empty -wal
        late.run_write(lambda s: s.execute(text("INSERT INTO drill VALUES (3)")))
        late.close()
        (flags / "done").touch()
        _, err = holder.communicate(timeout=60)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.communicate()
    assert holder.returncode == 0, err
    assert "its -wal file was deleted while in use" in err
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert sorted(x for (x,) in conn.execute("SELECT x FROM drill")) == [1, 2, 3, 4]
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
