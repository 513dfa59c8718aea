"""The job queue in the shared database: what the engine service should generate next.

Jobs survive restarts (they are rows). A worker *claims* the most urgent queued job in one
``UPDATE ... RETURNING`` statement inside a ``BEGIN IMMEDIATE`` transaction, so two worker
processes can never take the same job. While it works it sends heartbeats; a worker that dies
(killed, power cut) stops sending them, and :meth:`JobQueue.requeue_stale` puts its job back in
the queue. Each claim counts as an attempt; after ``max_attempts`` a job is marked failed with
the last error text, so one bad image cannot keep the worker busy forever.

Only the artwork's own failures use attempts up. A machine fault (engine/store/faults.py: the
worker killed, the disk full, the clock jumped) gives the attempt back and delays the job with
exponential back-off (``not_before``): it is retried forever and never failed, yet a job that
crashes its worker every time cannot starve the others. Failed jobs get a fresh set of
attempts after a cool-down (:meth:`JobQueue.retry_cooled_down`).

Engine names on jobs: ``""`` or ``"auto"`` mean "whichever engine the service runs".
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, Insert, and_, exists, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

from .faults import Fault, backoff_seconds
from .models import Artwork, ArtworkStatus, Clip, Job, JobKind, JobStatus, utcnow

if TYPE_CHECKING:
    from .db import Database

PRIORITY_CAPTURE = 100
PRIORITY_VISITOR = 50
PRIORITY_PREGENERATE = 0

# Job engine names that any worker may take.
ANY_ENGINE = ("", "auto")

OPEN_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)

# Error text is for people; keep the column small.
MAX_ERROR_CHARS = 4000

# Artworks examined per transaction of :meth:`JobQueue.enqueue_missing`: large enough that a
# million artworks queue in seconds (benchmarks/bulk_enqueue.py), small enough that the write
# lock is free every few tens of milliseconds for the workers' claims and heartbeats.
ENQUEUE_CHUNK = 10_000
ENQUEUE_PAUSE_S = 0.02

# Back-off of a job put back after a machine fault: 5 s, 10 s, ... up to 15 minutes.
FAULT_BACKOFF_BASE_S = 5.0
FAULT_BACKOFF_CAP_S = 900.0


def _put_back(job: Job, error: str) -> None:
    """Requeue a job (failed, or its worker gone), or fail it if that was its last attempt."""
    job.error = error
    job.claimed_by = ""
    if job.attempts >= job.max_attempts:
        job.status = JobStatus.FAILED
        job.finished_at = utcnow()
    else:
        job.status = JobStatus.QUEUED


# Faults that may come from the job's input (an image that makes the worker crash or run out
# of memory): such a job waits out a growing back-off so it cannot starve the others. A full
# disk or a busy database is no job's doing: the worker backs off instead (engine/worker.py).
JOB_DELAYING_FAULTS = (Fault.WORKER_LOST, Fault.OUT_OF_MEMORY, Fault.CLOCK_JUMP)


def _give_back(job: Job, fault: Fault, error: str) -> None:
    """Requeue a job after a machine fault: the attempt does not count, the job waits a while."""
    job.error = f"{fault}: {error}"[-MAX_ERROR_CHARS:]
    job.claimed_by = ""
    job.status = JobStatus.QUEUED
    job.attempts = max(0, job.attempts - 1)
    job.faults = (job.faults or 0) + 1
    # The first fault costs no wait (one power cut says nothing about the job); from the second
    # on the job waits 5 s, 10 s, ... so that a job that kills its worker cannot starve the rest.
    if fault in JOB_DELAYING_FAULTS and job.faults > 1:
        delay = backoff_seconds(job.faults - 1, FAULT_BACKOFF_BASE_S, FAULT_BACKOFF_CAP_S)
        job.not_before = utcnow() + timedelta(seconds=delay)


def _params_json(params: dict[str, Any] | None) -> str:
    return json.dumps(params or {}, sort_keys=True, separators=(",", ":"), default=str)


def _insert_rows(s: Session, stmt: Insert) -> int:
    # Session.execute is typed as returning a plain Result; an INSERT's is a CursorResult.
    return int(cast("CursorResult[Any]", s.execute(stmt)).rowcount)


class JobQueue:
    """Enqueue, claim and finish jobs; every call is its own short write transaction."""

    def __init__(self, db: Database):
        self.db = db

    def enqueue(
        self,
        kind: JobKind,
        *,
        artwork_id: int | None,
        image_hash: str | None,
        engine: str,
        params: dict[str, Any] | None = None,
        priority: int = PRIORITY_PREGENERATE,
        max_attempts: int = 3,
    ) -> int:
        """Queue a job and return its id.

        If an open (queued or running) job for the same artwork, engine and parameters exists,
        no second one is made: its id is returned, and its priority raised if this one is higher
        (a visitor now waiting for what was pregeneration).
        """
        if max_attempts < 1:
            raise ValueError(f"max_attempts {max_attempts} is out of range; allowed: 1 or more")
        pj = _params_json(params)

        def write(s: Session) -> int:
            existing = s.scalars(
                select(Job).where(
                    Job.artwork_id.is_(None) if artwork_id is None else Job.artwork_id == artwork_id,
                    Job.image_hash.is_(None) if image_hash is None else Job.image_hash == image_hash,
                    Job.engine == engine,
                    Job.params_json == pj,
                    Job.status.in_(OPEN_STATUSES),
                )
            ).first()
            if existing is not None:
                if priority > existing.priority:
                    existing.priority = priority
                return existing.id
            job = Job(
                kind=kind,
                artwork_id=artwork_id,
                image_hash=image_hash,
                engine=engine,
                params_json=pj,
                priority=priority,
                status=JobStatus.QUEUED,
                attempts=0,
                max_attempts=max_attempts,
            )
            s.add(job)
            s.flush()
            return job.id

        return self.db.run_write(write)

    def enqueue_missing(
        self,
        *,
        engine: str,
        model_version: str,
        params_hash: str,
        candidates: int,
        max_attempts: int = 3,
        chunk: int = ENQUEUE_CHUNK,
        on_chunk: Callable[[int], None] | None = None,
    ) -> int:
        """Queue a pregeneration job for every ready artwork with fewer than ``candidates``
        clips under (``engine``, ``model_version``, ``params_hash``); returns how many.

        Set-based: one ``INSERT ... SELECT`` per ``chunk`` artwork ids, each its own short
        transaction, so workers claim the first jobs while later chunks are still being queued
        and the lock is never held for long. Artworks with an open job, or whose job failed for
        the same image (retried after its cool-down, see :meth:`retry_cooled_down`), are left
        alone, as :meth:`enqueue` would. ``on_chunk(queued so far)`` is called after each chunk
        that queued something.
        """
        if max_attempts < 1:
            raise ValueError(f"max_attempts {max_attempts} is out of range; allowed: 1 or more")
        with self.db.read() as s:
            low, high = s.execute(select(func.min(Artwork.id), func.max(Artwork.id))).one()
        if low is None:
            return 0
        clips_made = (
            select(func.count())
            .where(
                Clip.image_hash == Artwork.image_hash,
                Clip.engine == engine,
                Clip.model_version == model_version,
                Clip.params_hash == params_hash,
            )
            .scalar_subquery()
        )
        job_taken = exists().where(
            Job.artwork_id == Artwork.id,
            Job.image_hash == Artwork.image_hash,
            Job.engine == engine,
            Job.params_json == _params_json(None),
            Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.FAILED)),
        )
        values = {
            Job.kind: literal(JobKind.PREGENERATE.value),
            Job.artwork_id: Artwork.id,
            Job.image_hash: Artwork.image_hash,
            Job.engine: literal(engine),
            Job.params_json: literal(_params_json(None)),
            Job.priority: literal(PRIORITY_PREGENERATE),
            Job.status: literal(JobStatus.QUEUED.value),
            Job.attempts: literal(0),
            Job.faults: literal(0),
            Job.max_attempts: literal(max_attempts),
            Job.error: literal(""),
            Job.claimed_by: literal(""),
            Job.created_at: literal(utcnow()),
        }
        queued = 0
        for start in range(low, high + 1, chunk):
            lacking = (
                Artwork.id >= start,
                Artwork.id < start + chunk,
                Artwork.status == ArtworkStatus.READY,
                Artwork.image_hash.is_not(None),
                clips_made < candidates,
                ~job_taken,
            )
            # Looked for under a read snapshot first, which blocks no one: the service's
            # housekeeping pass, which mostly finds nothing, takes no write lock at all.
            with self.db.read() as s:
                if s.scalar(select(Artwork.id).where(*lacking).limit(1)) is None:
                    continue
            pick = select(*values.values()).where(*lacking).order_by(Artwork.id)
            stmt = insert(Job).from_select(list(values), pick)
            queued += self.db.run_write(partial(_insert_rows, stmt=stmt))
            if on_chunk is not None:
                on_chunk(queued)
            # SQLite's lock is not fair: a writer that takes it again at once starves the
            # others, whose busy handler sleeps 25-100 ms between tries. A short pause lets
            # the workers' claims and heartbeats in (their slowest claim: benchmarks/bulk_enqueue.py).
            time.sleep(ENQUEUE_PAUSE_S)
        return queued

    def find(
        self,
        *,
        artwork_id: int | None,
        image_hash: str | None,
        engine: str,
        params: dict[str, Any] | None = None,
        statuses: Sequence[JobStatus] = OPEN_STATUSES,
    ) -> Job | None:
        """The newest job for this artwork, image, engine and parameters in ``statuses``."""
        with self.db.read() as s:
            return s.scalars(
                select(Job)
                .where(
                    Job.artwork_id.is_(None) if artwork_id is None else Job.artwork_id == artwork_id,
                    Job.image_hash.is_(None) if image_hash is None else Job.image_hash == image_hash,
                    Job.engine == engine,
                    Job.params_json == _params_json(params),
                    Job.status.in_(list(statuses)),
                )
                .order_by(Job.id.desc())
                .limit(1)
            ).first()

    def claim(self, worker_id: str, engines: Sequence[str] | None = None) -> Job | None:
        """Take the most urgent queued job for ``worker_id`` (atomic across processes).

        ``engines`` limits it to jobs for those engine names (plus the "any engine" names);
        None takes any job. Returns the job (detached, as it is after the claim) or None.
        """
        now = utcnow()
        conditions = [Job.status == JobStatus.QUEUED, or_(Job.not_before.is_(None), Job.not_before <= now)]
        if engines is not None:
            conditions.append(Job.engine.in_([*engines, *ANY_ENGINE]))
        next_id = (
            select(Job.id).where(*conditions).order_by(Job.priority.desc(), Job.id).limit(1).scalar_subquery()
        )
        stmt = (
            update(Job)
            .where(Job.id == next_id, Job.status == JobStatus.QUEUED)
            .values(
                status=JobStatus.RUNNING,
                claimed_by=worker_id,
                attempts=Job.attempts + 1,
                heartbeat_at=now,
                started_at=now,
                finished_at=None,
            )
            .returning(Job)
            .execution_options(synchronize_session=False)
        )
        return self.db.run_write(lambda s: s.scalars(stmt).first())

    def heartbeat(self, job_id: int, worker_id: str) -> bool:
        """Say the worker still works on the job; False if the job is no longer its own."""
        stmt = (
            update(Job)
            .where(Job.id == job_id, Job.claimed_by == worker_id, Job.status == JobStatus.RUNNING)
            .values(heartbeat_at=utcnow())
        )
        return self.db.run_change(stmt) == 1

    def complete(self, job_id: int, worker_id: str | None = None) -> bool:
        """Mark the job done. With ``worker_id``, only if that worker still holds it (a worker
        thought dead whose job was handed on must not overwrite the new holder's state)."""
        conditions = [Job.id == job_id]
        if worker_id is not None:
            conditions += [Job.claimed_by == worker_id, Job.status == JobStatus.RUNNING]
        stmt = update(Job).where(*conditions).values(status=JobStatus.DONE, finished_at=utcnow(), error="")
        return self.db.run_change(stmt) == 1

    def fail(self, job_id: int, error: str, worker_id: str | None = None) -> JobStatus:
        """Record an error: requeue the job, or mark it failed after its last attempt.

        Returns the job's new status (unchanged if ``worker_id`` no longer holds it).
        """
        error = error[-MAX_ERROR_CHARS:]

        def write(s: Session) -> JobStatus:
            job = s.get(Job, job_id)
            if job is None:
                raise KeyError(f"no job with id {job_id}")
            if worker_id is not None and (job.claimed_by != worker_id or job.status != JobStatus.RUNNING):
                return job.status
            _put_back(job, error)
            return job.status

        return self.db.run_write(write)

    def release(self, job_id: int, fault: Fault, error: str, worker_id: str | None = None) -> bool:
        """Give a job back after a machine fault: queued again, its attempt not counted, not
        claimed before its back-off has passed. False if ``worker_id`` no longer holds it."""

        def write(s: Session) -> bool:
            job = s.get(Job, job_id)
            if job is None or job.status != JobStatus.RUNNING:
                return False
            if worker_id is not None and job.claimed_by != worker_id:
                return False
            _give_back(job, fault, error)
            return True

        return self.db.run_write(write)

    def next_ready_in(self, engines: Sequence[str] | None = None) -> float | None:
        """Seconds until the soonest job that waits out a back-off may be claimed; None if none."""
        conditions = [Job.status == JobStatus.QUEUED, Job.not_before.is_not(None)]
        if engines is not None:
            conditions.append(Job.engine.in_([*engines, *ANY_ENGINE]))
        with self.db.read() as s:
            soonest = s.scalar(select(func.min(Job.not_before)).where(*conditions))
        return None if soonest is None else max(0.0, (soonest - utcnow()).total_seconds())

    def retry_cooled_down(self, cooldown_s: float) -> int:
        """Queue again, with fresh attempts, the jobs that failed more than ``cooldown_s`` ago
        (a passing trouble that looked like the artwork's own, or a file fixed meanwhile)."""
        cutoff = utcnow() - timedelta(seconds=cooldown_s)
        stmt = (
            update(Job)
            .where(Job.status == JobStatus.FAILED, Job.finished_at < cutoff)
            .values(status=JobStatus.QUEUED, attempts=0, finished_at=None, not_before=None)
        )
        return self.db.run_change(stmt)

    def requeue_stale(self, older_than_s: float) -> int:
        """Put back running jobs whose worker sent no heartbeat for ``older_than_s`` seconds.

        A lost worker (or a clock that jumped ahead) is a machine fault: the attempt does not
        count, and the job waits out its back-off. Returns how many jobs were put back.
        """
        cutoff = utcnow() - timedelta(seconds=older_than_s)
        stale = and_(
            Job.status == JobStatus.RUNNING,
            or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff),
        )

        def write(s: Session) -> int:
            jobs = s.scalars(select(Job).where(stale)).all()
            for job in jobs:
                _give_back(
                    job,
                    Fault.WORKER_LOST,
                    f"worker {job.claimed_by or '?'} stopped responding "
                    f"(no heartbeat for {older_than_s:g} s) during attempt {job.attempts}",
                )
            return len(jobs)

        return self.db.run_write(write)

    def requeue_orphans(self, claimed_by_prefix: str, alive: Callable[[str], bool]) -> int:
        """Put back running jobs of workers known to be dead, without waiting for staleness.

        ``claimed_by_prefix`` selects the workers this caller can judge (e.g. those of this
        machine), ``alive(worker_id)`` says whether one still runs. A restarted service uses
        it to take back at once what its killed predecessor held.
        """

        def write(s: Session) -> int:
            jobs = s.scalars(
                select(Job).where(
                    Job.status == JobStatus.RUNNING, Job.claimed_by.startswith(claimed_by_prefix)
                )
            ).all()
            orphans = [job for job in jobs if not alive(job.claimed_by)]
            for job in orphans:
                _give_back(
                    job, Fault.WORKER_LOST, f"worker {job.claimed_by} ended during attempt {job.attempts}"
                )
            return len(orphans)

        return self.db.run_write(write)

    def retry_failed(self, artwork_id: int | None = None) -> int:
        """Give failed jobs a fresh set of attempts (after the curator fixed the image)."""
        conditions = [Job.status == JobStatus.FAILED]
        if artwork_id is not None:
            conditions.append(Job.artwork_id == artwork_id)
        stmt = update(Job).where(*conditions).values(status=JobStatus.QUEUED, attempts=0, not_before=None)
        return self.db.run_change(stmt)

    # -- reading ---------------------------------------------------------------------------

    def counts(self) -> dict[JobStatus, int]:
        """Jobs per status (every status present, zero when none)."""
        with self.db.read() as s:
            rows = s.execute(select(Job.status, func.count()).group_by(Job.status)).all()
        counts = dict.fromkeys(JobStatus, 0)
        counts.update(rows)
        return counts

    def get(self, job_id: int) -> Job | None:
        with self.db.read() as s:
            return s.get(Job, job_id)

    def latest_for(self, artwork_id: int) -> Job | None:
        """The artwork's most relevant job: an open one first, else the newest."""
        with self.db.read() as s:
            return s.scalars(
                select(Job)
                .where(Job.artwork_id == artwork_id)
                .order_by(Job.status.in_(OPEN_STATUSES).desc(), Job.id.desc())
                .limit(1)
            ).first()

    def status_for(self, artwork_id: int) -> JobStatus | None:
        """The status of the artwork's latest job; None if it has none."""
        job = self.latest_for(artwork_id)
        return None if job is None else job.status
