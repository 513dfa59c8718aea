"""The job queue on a real SQLite file: priorities, dedup, attempts, stale claims, races."""

from __future__ import annotations

import multiprocessing as mp
import time

import pytest

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
