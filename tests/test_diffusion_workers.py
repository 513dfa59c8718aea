"""Several worker processes (one per GPU; here two CPU processes) share one job queue."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import diffusion_helpers as helpers

ROOT = Path(__file__).resolve().parent.parent


def write_config(tmp_path: Path, collection: Path, db: Path) -> Path:
    config = tmp_path / "art2mus.toml"
    config.write_text(
        f"""
[collection]
path = "{collection}"
[store]
database = "{db}"
[engine]
name = "art2mus"
duration = 5.0
steps = 2
candidates = 1
batch_size = 2
[diffusion]
device = "cpu"
duration = 5.0
"""
    )
    return config


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "art2mus", "-c", str(config), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_two_worker_processes_do_every_job_exactly_once(tmp_path, collection):
    from sqlalchemy import select

    from engine.engines.diffusion.bundle import model_version
    from engine.store import Database
    from engine.store.models import Artwork, ArtworkStatus, Clip, Job

    bundle = helpers.tiny_bundle()
    db_path = tmp_path / "store.db"
    config = write_config(tmp_path, collection, db_path)

    run = cli(config, "pregenerate", "--model", str(bundle), "--gpus", "cpu:2")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "starting 2 worker processes: cpu, cpu" in run.stderr

    db = Database(db_path)
    with db.read() as s:
        ready = s.scalars(select(Artwork.id).where(Artwork.status == ArtworkStatus.READY)).all()
        jobs = s.scalars(select(Job)).all()
        clips = s.scalars(select(Clip)).all()
    db.close()
    assert len(ready) == 8
    # One job per artwork, each claimed once and done; one clip per artwork.
    assert sorted(j.artwork_id for j in jobs) == sorted(ready)
    assert all(j.status == "done" and j.attempts == 1 for j in jobs)
    assert Counter(c.artwork_id for c in clips) == dict.fromkeys(ready, 1)
    assert {c.engine for c in clips} == {"art2mus"}
    assert {c.model_version for c in clips} == {model_version(bundle)}
    # Both processes took part.
    workers = Counter(j.claimed_by for j in jobs)
    assert len(workers) == 2, workers
    assert {w.split(":", 2)[2] for w in workers} == {"cpu#0", "cpu#1"}
    assert "generated 8 clips for 8 artworks on 2 devices" in run.stdout

    # Run again: every clip is cached, nothing is made twice.
    again = cli(config, "pregenerate", "--model", str(bundle), "--gpus", "cpu:2", "--no-scan")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "generated 0 clips" in again.stdout


@pytest.mark.slow
def test_a_bundle_that_does_not_load_is_reported_by_every_worker(tmp_path, collection):
    folder = helpers.copy_bundle(tmp_path)
    (folder / "vae" / "config.json").write_text("{}")
    config = write_config(tmp_path, collection, tmp_path / "store.db")
    run = cli(config, "pregenerate", "--model", str(folder), "--gpus", "cpu:2")
    assert run.returncode == 1
    assert run.stderr.count("vae/config.json: sha256 mismatch") >= 2, run.stderr


def test_bad_gpus_option_is_refused(tmp_path, collection):
    """Refused before any worker process starts (run in this process: no child needed)."""
    from click.testing import CliRunner

    from art2mus.cli import main

    config = write_config(tmp_path, collection, tmp_path / "store.db")
    run = CliRunner().invoke(main, ["-c", str(config), "pregenerate", "--gpus", "cpu:zero"])
    assert run.exit_code == 2 and "after 'cpu:' give a number" in run.output
    if not torch.cuda.is_available():
        run = CliRunner().invoke(main, ["-c", str(config), "pregenerate", "--gpus", "2"])
        assert run.exit_code == 2 and "this machine has 0 usable CUDA GPU(s)" in run.output


class LoudestScorer:
    name = "test-rms"

    def __call__(self, images, audio, sample_rate):
        return np.sqrt(np.mean(np.square(audio), axis=1))


@pytest.mark.slow
def test_worker_keeps_the_best_scored_candidate(tmp_path, collection):
    """With a scorer, the worker's candidates (one generate_batch call) are ranked by it."""
    from engine.catalog.scanner import scan_collection
    from engine.config import default_config
    from engine.engines.diffusion.engine import Art2MusEngine
    from engine.store import Database
    from engine.store.clips import ClipStore
    from engine.worker import Worker

    config = default_config()
    config.collection.path = collection
    config.engine.duration, config.engine.candidates, config.engine.batch_size = 5.0, 3, 3
    config.diffusion.duration = 5.0
    db = Database(tmp_path / "store.db")
    scan_collection(db, collection, config.catalog)
    engine = Art2MusEngine(helpers.tiny_bundle(), steps=2, scorer=LoudestScorer())
    worker = Worker(db, engine, config)
    worker.enqueue_missing()
    result = worker.run_once()
    assert result is not None and result.clips == 3
    store = ClipStore(db)
    clips = list(store.clips_for_image(store.get(store.playable_for(result.artwork_id).id).image_hash))
    assert len(clips) == 3
    chosen = [c for c in clips if c.chosen]
    assert len(chosen) == 1 and chosen[0].score == max(c.score for c in clips)
    db.close()


@pytest.mark.slow
def test_batch_worker_puts_several_artworks_in_one_engine_call(tmp_path, collection):
    from engine.catalog.scanner import scan_collection
    from engine.config import default_config
    from engine.engines.diffusion.engine import Art2MusEngine
    from engine.store import Database
    from engine.store.clips import ClipStore
    from engine.store.jobs import JobQueue
    from engine.worker import Worker

    config = default_config()
    config.collection.path = collection
    config.engine.duration, config.engine.candidates, config.engine.batch_size = 5.0, 1, 4
    config.diffusion.duration = 5.0
    db = Database(tmp_path / "store.db")
    scan_collection(db, collection, config.catalog)
    (collection / "cafe-terrace-at-night.png").write_bytes(b"not a png any more")  # changed after the scan
    engine = Art2MusEngine(helpers.tiny_bundle(), steps=2)
    calls = []
    original = engine.generate_batch
    engine.generate_batch = lambda images, duration, seeds: (
        calls.append(len(images)) or original(images, duration, seeds)
    )
    worker = Worker(db, engine, config, batch_artworks=True)
    assert worker.enqueue_missing() == 8
    summary = worker.run_until_idle()
    assert summary.done == 7 and summary.skipped == 1 and summary.clips == 7
    assert calls == [4, 3]  # 8 jobs claimed, one skipped (its file changed): two batches
    assert JobQueue(db).counts().get("done") == 8
    # A batched clip is the clip the artwork gets on its own (same seed, same image).
    store = ClipStore(db)
    clip = store.playable_for(1)
    from engine.store.models import Artwork

    with db.read() as s:
        path = collection / s.get(Artwork, 1).path
    from engine.catalog.images import load_rgb
    from engine.worker import LOAD_MAX_SIDE

    image = load_rgb(path, max_pixels=config.catalog.max_image_pixels, max_side=LOAD_MAX_SIDE)
    alone = original([image], 5.0, [clip.seed])[0]
    audio, rate = store.load_audio(clip.id)
    assert rate == 48000
    np.testing.assert_allclose(audio, alone.audio, atol=2e-3)
    db.close()


@pytest.mark.slow
def test_engine_serve_on_two_worker_processes_stops_cleanly(tmp_path, collection):
    """`engine serve --gpus cpu:2`: the first process syncs the catalog, both generate; SIGTERM stops both."""
    import signal
    import time

    from sqlalchemy import func, select

    from engine.store import Database
    from engine.store.models import Clip

    db_path = tmp_path / "store.db"
    config = write_config(tmp_path, collection, db_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "art2mus",
            "-c",
            str(config),
            "engine",
            "serve",
            "--model",
            str(helpers.tiny_bundle()),
            "--gpus",
            "cpu:2",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 400
        clips = 0
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(2)
            if db_path.exists():
                db = Database(db_path)
                with db.read() as s:
                    clips = s.scalar(select(func.count()).select_from(Clip))
                    per_artwork = s.execute(
                        select(Clip.artwork_id, func.count()).group_by(Clip.artwork_id)
                    ).all()
                db.close()
                if clips >= 8:
                    break
        assert clips == 8, f"only {clips} clips were made"
        assert all(n == 1 for _, n in per_artwork)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert "engine service stopped" in out
