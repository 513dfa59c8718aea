"""The job queue on a real SQLite file: priorities, dedup, attempts, stale claims, races."""

from __future__ import annotations

import multiprocessing as mp
import time

import pytest
from sqlalchemy import select

from engine.store import Database, JobStatus
from engine.store.jobs import PRIORITY_CAPTURE, PRIORITY_PREGENERATE, JobQueue


def test_claim_order_dedup_and_complete(db_path):
    q = JobQueue(Database(db_path))
    a = q.enqueue("pregenerate", artwork_id=None, image_hash="a", engine="default", params={"d": 30})
    again = q.enqueue("pregenerate", artwork_id=None, image_hash="a", engine="default", params={"d": 30})
    assert again == a
    b = q.enqueue("capture", artwork_id=None, image_hash="b", engine="default", priority=PRIORITY_CAPTURE)
    c = q.enqueue("pregenerate", artwork_id=None, image_hash="c", engine="art2mus")
    assert q.counts()[JobStatus.QUEUED] == 3

    first = q.claim("w1", engines=["default"])
    assert first.id == b and first.status == JobStatus.RUNNING and first.attempts == 1
    assert first.claimed_by == "w1"
    second = q.claim("w1", engines=["default"])
    assert second.id == a
    # The art2mus job is not for a default-engine worker.
    assert q.claim("w1", engines=["default"]) is None
    assert q.claim("w2").id == c
    q.complete(a)
    assert q.get(a).status == JobStatus.DONE
    # Once done, the same work may be queued again (e.g. regenerate).
    assert q.enqueue("pregenerate", artwork_id=None, image_hash="a", engine="default", params={"d": 30}) != a


def test_raised_priority_for_waiting_visitor(db_path):
    q = JobQueue(Database(db_path))
    q.enqueue("pregenerate", artwork_id=None, image_hash="x", engine="default")
    y = q.enqueue("pregenerate", artwork_id=None, image_hash="y", engine="default")
    assert q.enqueue("pregenerate", artwork_id=None, image_hash="y", engine="default", priority=50) == y
    assert q.claim("w").id == y


def test_fail_requeues_then_fails_with_error(db_path):
    q = JobQueue(Database(db_path))
    j = q.enqueue("pregenerate", artwork_id=None, image_hash="a", engine="default", max_attempts=2)
    q.claim("w")
    assert q.fail(j, "first error") == JobStatus.QUEUED
    assert q.claim("w").attempts == 2
    assert q.fail(j, "second error") == JobStatus.FAILED
    job = q.get(j)
    assert job.status == JobStatus.FAILED and job.error == "second error" and job.finished_at
    assert q.claim("w") is None
    assert q.retry_failed() == 1
    assert q.claim("w").id == j


def test_stale_claim_is_requeued(db_path):
    q = JobQueue(Database(db_path))
    j = q.enqueue("pregenerate", artwork_id=None, image_hash="a", engine="default", max_attempts=2)
    q.claim("dead-worker")
    assert q.requeue_stale(60) == 0  # fresh heartbeat
    time.sleep(0.3)
    assert q.heartbeat(j, "dead-worker")
    assert q.requeue_stale(0.2) == 0
    time.sleep(0.3)
    assert q.requeue_stale(0.2) == 1
    job = q.get(j)
    assert job.status == JobStatus.QUEUED and "dead-worker" in job.error
    # A lost worker is the machine's fault: the attempt is given back, the job backs off.
    assert (job.attempts, job.faults, job.not_before) == (0, 1, None)  # one loss: no wait
    # The dead worker's heartbeat no longer holds the job.
    assert not q.heartbeat(j, "dead-worker")
    for n in range(2, 5):  # lost again and again: never failed, each time a longer wait
        _ready_now(q, j)
        q.claim("w2")
        time.sleep(0.3)
        assert q.requeue_stale(0.2) == 1
        job = q.get(j)
        assert job.status == JobStatus.QUEUED and (job.attempts, job.faults) == (0, n)
        assert q.claim("w3") is None and 0 < q.next_ready_in() < 5 * 2 ** (n - 2) * 1.25 + 1


def _ready_now(q, job_id):
    """Let a job that backs off be claimed now (as if its back-off had passed)."""
    from sqlalchemy import update

    from engine.store import Job

    q.db.run_change(update(Job).where(Job.id == job_id).values(not_before=None))


def _claimer(path, worker_id, start, results):
    q = JobQueue(Database(path))
    start.wait()
    taken = []
    while (job := q.claim(worker_id)) is not None:
        taken.append(job.id)
        q.complete(job.id)
    results.put((worker_id, taken))


@pytest.mark.slow
def test_two_processes_never_claim_the_same_job(db_path):
    q = JobQueue(Database(db_path))
    ids = [
        q.enqueue(
            "pregenerate",
            artwork_id=None,
            image_hash=f"h{i}",
            engine="default",
            priority=PRIORITY_PREGENERATE,
        )
        for i in range(120)
    ]
    ctx = mp.get_context("spawn")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_claimer, args=(db_path, f"w{k}", start, results)) for k in range(2)]
    for p in procs:
        p.start()
    start.set()
    taken = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0]
    all_taken = taken["w0"] + taken["w1"]
    assert sorted(all_taken) == sorted(ids)  # every job once, none twice
    assert q.counts()[JobStatus.DONE] == 120


def test_find_and_status_for(db_path):
    from engine.store import Artwork

    db = Database(db_path)
    art = db.run_write(lambda s: (s.add(a := Artwork(path="x.png", image_hash="h")), s.flush(), a.id)[2])
    q = JobQueue(db)
    assert q.status_for(art) is None
    j = q.enqueue("pregenerate", artwork_id=art, image_hash="h", engine="default", max_attempts=1)
    assert q.find(artwork_id=art, image_hash="h", engine="default").id == j
    assert q.find(artwork_id=art, image_hash="h", engine="art2mus") is None
    assert q.status_for(art) == JobStatus.QUEUED
    q.claim("w")
    assert q.status_for(art) == JobStatus.RUNNING
    q.fail(j, "boom")
    assert q.status_for(art) == JobStatus.FAILED
    assert q.find(artwork_id=art, image_hash="h", engine="default") is None  # not open
    assert q.find(artwork_id=art, image_hash="h", engine="default", statuses=[JobStatus.FAILED]).id == j


def test_a_worker_thought_dead_cannot_overwrite_the_new_holder(db_path):
    q = JobQueue(Database(db_path))
    j = q.enqueue("pregenerate", artwork_id=None, image_hash="a", engine="default", max_attempts=3)
    q.claim("slow")
    time.sleep(0.3)
    assert q.requeue_stale(0.2) == 1
    _ready_now(q, j)
    assert q.claim("new").claimed_by == "new"
    assert not q.complete(j, "slow")  # the slow worker comes back: no effect
    assert q.fail(j, "late error", "slow") == JobStatus.RUNNING
    job = q.get(j)
    assert job.status == JobStatus.RUNNING and job.claimed_by == "new"
    assert q.complete(j, "new") and q.get(j).status == JobStatus.DONE


# -- bulk enqueue ----------------------------------------------------------------------------


def _artworks(db, count, **overrides):
    """``count`` ready artworks with distinct image hashes; returns their ids."""
    from engine.store import Artwork

    with db.write() as s:
        rows = [Artwork(path=f"a{i}.png", image_hash=f"{i:064x}", **overrides) for i in range(count)]
        s.add_all(rows)
        s.flush()
        return [r.id for r in rows]


def _clip(db, image_hash, engine="art2mus", model_version="m", params_hash="p"):
    from engine.store import Clip

    with db.write() as s:
        s.add(
            Clip(
                image_hash=image_hash,
                engine=engine,
                model_version=model_version,
                params_hash=params_hash,
                duration=5.0,
                sample_rate=16000,
                audio=b"",
            )
        )


def test_enqueue_missing_queues_each_artwork_that_lacks_clips_once(db_path):
    from sqlalchemy import update

    from engine.store import Artwork, ArtworkStatus, Job

    db = Database(db_path)
    q = JobQueue(db)
    ids = _artworks(db, 23)
    db.run_change(update(Artwork).where(Artwork.id == ids[0]).values(status=ArtworkStatus.INVALID))
    db.run_change(update(Artwork).where(Artwork.id == ids[1]).values(image_hash=None))
    _clip(db, f"{2:064x}")  # has its clip
    _clip(db, f"{3:064x}", model_version="old")  # only an old model's clip: still missing
    open_job = q.enqueue("visitor", artwork_id=ids[4], image_hash=f"{4:064x}", engine="art2mus")
    chunks = []
    key = dict(engine="art2mus", model_version="m", params_hash="p", candidates=1, max_attempts=2)
    assert q.enqueue_missing(**key, chunk=5, on_chunk=chunks.append) == 19
    assert chunks == sorted(chunks) and len(chunks) == 5 and chunks[-1] == 19  # a transaction per 5
    assert q.enqueue_missing(**key) == 0  # queued already: no duplicates
    with db.read() as s:
        jobs = s.scalars(select(Job).where(Job.id != open_job).order_by(Job.id)).all()
    assert [j.artwork_id for j in jobs] == ids[3:4] + ids[5:]
    job = jobs[0]
    assert (job.kind, job.status, job.engine, job.params_json, job.image_hash) == (
        "pregenerate",
        JobStatus.QUEUED,
        "art2mus",
        "{}",
        f"{3:064x}",
    )
    assert (job.attempts, job.max_attempts, job.faults, job.priority) == (0, 2, 0, PRIORITY_PREGENERATE)
    assert job.created_at is not None and job.error == "" and job.claimed_by == ""
    # Two candidates wanted: the artwork with one clip is queued too; failed jobs are not.
    db.run_change(update(Job).where(Job.id == job.id).values(status=JobStatus.FAILED))
    assert q.enqueue_missing(**{**key, "candidates": 2}) == 1  # artwork 2's second candidate
    assert q.enqueue_missing(engine="default", model_version="m", params_hash="p", candidates=1) == 21


def test_workers_claim_between_the_chunks_of_a_bulk_enqueue(db_path):
    """Each chunk is its own transaction: another connection claims (and so a GPU works)
    while the rest is still being queued."""
    db = Database(db_path)
    _artworks(db, 30)
    other = JobQueue(Database(db_path))
    claimed = []

    def claim_now(_queued):
        job = other.claim("gpu-0", engines=["art2mus"])
        claimed.append(None if job is None else job.id)

    queued = JobQueue(db).enqueue_missing(
        engine="art2mus", model_version="m", params_hash="p", candidates=1, chunk=10, on_chunk=claim_now
    )
    assert queued == 30 and len(claimed) == 3 and None not in claimed
    assert other.counts()[JobStatus.RUNNING] == 3


def test_claims_read_the_claim_index_in_order(db_path):
    """The claim takes its job off ix_jobs_claim without sorting the queue (schema 6)."""
    import sqlite3

    Database(db_path).close()
    con = sqlite3.connect(db_path)
    plan = " ".join(
        str(row[-1])
        for row in con.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE status = 'queued' AND "
            "(not_before IS NULL OR not_before <= '2026') ORDER BY priority DESC, id LIMIT 1"
        )
    )
    assert "ix_jobs_claim" in plan and "TEMP B-TREE" not in plan


def test_a_pool_worker_waits_for_the_queue_and_says_so(caplog, monkeypatch):
    """No silent give-up: a worker that finds the queue empty while the first one still queues
    waits (a log line a minute) until queueing ends, however long it takes."""
    import logging
    import threading

    from engine import worker_pool

    monkeypatch.setattr(worker_pool, "QUEUE_WAIT_LOG_S", 0.2)
    queued, stop = threading.Event(), threading.Event()
    threading.Timer(1.5, queued.set).start()
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="engine.worker_pool"):
        worker_pool._wait_for_queue(queued, stop, "gpu-1")
    assert time.monotonic() - started >= 1.4
    waits = [r.getMessage() for r in caplog.records if "waiting for the first worker" in r.getMessage()]
    assert waits and all("gpu-1" in w for w in waits)
