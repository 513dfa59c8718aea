"""The pregeneration worker: fills the clip cache for every ready artwork.

The worker takes jobs from the queue in the shared database (highest priority first: camera
captures, then visitors waiting, then pregeneration), generates the missing clips with its
engine and stores each one in a single transaction. What is cached is skipped: clips are
found by image hash, engine, model version and parameters, so renaming files or restarting
the service reuses them.

Crash safety: a clip is written only once it is complete, so a worker killed mid-clip leaves
nothing behind. While it works it sends heartbeats; if it dies, the next worker to look at the
queue finds the job's heartbeat stale and puts it back.

Faults are not failures (engine/store/faults.py): only the artwork's own errors count attempts
(after ``engine.max_attempts`` the job is failed, and retried after
``engine.failed_retry_hours``). A machine fault (disk full, database busy, read-only or
damaged, a killed worker, a clock jump) gives the attempt back; the worker waits with
exponential back-off and retries forever, logging one WARNING when the condition starts and
one INFO when it ends (engine/store/conditions.py). Free space under
``store.min_free_megabytes`` pauses generation before the database is at risk. A damaged
database is set aside and rebuilt (engine/store/health.py); ``on_rebuilt`` then asks the
service to rescan the collection.

Job kinds (``JobKind``): pregenerate, visitor and capture fill what is missing; regenerate makes
new candidates with fresh seeds *beside* the clips there are: the chosen clip keeps playing
and nothing is removed, so a curator compares and picks (a curator's choice is never lost).

Batching: a job's candidates are generated ``engine.batch_size`` per engine call. A GPU engine
is several times faster per clip on a batch of artworks (benchmarks/engine_gpu.py), so a worker
made with ``batch_artworks=True`` claims jobs until their clips fill ``engine.batch_size`` and
generates them in one call per duration; storing, choosing, failing and skipping are the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from engine.engines.base import Engine, GeneratedClip
from engine.engines.registry import clip_duration
from engine.store.clips import ClipInfo, ClipStore, clip_params_hash
from engine.store.conditions import Conditions, forget_ended
from engine.store.faults import Backoff, Fault, RepeatFilter, classify, one_line
from engine.store.jobs import JobQueue
from engine.store.models import Artwork, ArtworkStatus, Job, JobKind, JobStatus

if TYPE_CHECKING:
    from engine.config import Config
    from engine.store.db import Database

log = logging.getLogger(__name__)

T = TypeVar("T")

# Images are decoded at most this large for the engines (features and encoders need less).
LOAD_MAX_SIDE = 1024
# How often the running worker does its housekeeping: queue what lacks clips (a quarantined
# clip, a rebuilt database), retry failed jobs whose cool-down passed, check the disk.
MAINTENANCE_SECONDS = 60.0
# While generation is paused for lack of disk space, look again this often.
DISK_CHECK_SECONDS = 10.0
# A difference between wall-clock and monotonic time over this is a clock jump.
CLOCK_JUMP_SECONDS = 60.0
# Clips no longer needed are pruned this often by the running service (engine/store/prune.py).
PRUNE_SECONDS = 24 * 3600.0
# Fault conditions that a job done proves over (the disk took a clip, the worker lives).
_JOB_FAULTS = (Fault.DISK_FULL, Fault.OUT_OF_MEMORY, Fault.WORKER_LOST, Fault.CLOCK_JUMP)


class JobSkipped(Exception):
    """The job no longer applies (the artwork is gone or its file changed since it was queued)."""


class JobOutcome(StrEnum):
    """How one job this worker took ended (not stored: the job's row has its JobStatus)."""

    DONE = "done"
    SKIPPED = "skipped"  # the job no longer applied (artwork gone or changed): not an error
    QUEUED = "queued"  # this attempt failed; the job waits for another one
    FAILED = "failed"  # the job's last attempt failed, or the job was no longer this worker's


@dataclass
class JobResult:
    job_id: int
    artwork_id: int | None
    path: str
    status: JobOutcome
    clips: int = 0  # clips generated
    error: str = ""
    seconds: float = 0.0


@dataclass
class WorkerSummary:
    jobs: int = 0
    done: int = 0
    skipped: int = 0
    retrying: int = 0
    failed: int = 0
    clips: int = 0
    seconds: float = 0.0
    errors: list[tuple[str, str]] = field(default_factory=list)  # (artwork path, error)

    def add(self, r: JobResult) -> None:
        self.jobs += 1
        self.clips += r.clips
        if r.status == JobOutcome.DONE:
            self.done += 1
        elif r.status == JobOutcome.SKIPPED:
            self.skipped += 1
        elif r.status == JobOutcome.QUEUED:
            self.retrying += 1
        else:
            self.failed += 1
        if r.error:
            self.errors.append((r.path, r.error))


@dataclass
class _JobInHand:
    """A job this worker claimed: its heartbeat, then what planning found (the image, the seeds
    still to make, the clips already cached) and the clips made so far."""

    job: Job
    beat: _Heartbeat
    started: float = field(default_factory=time.monotonic)
    image_hash: str = ""  # the job's, once planning checked that it has one
    path: Path | str = ""
    image: Any = None
    duration: float = 0.0
    seeds: list[int] = field(default_factory=list)
    existing: list[ClipInfo] = field(default_factory=list)
    made: list[tuple[int, GeneratedClip]] = field(default_factory=list)  # (clip id, clip) stored


# Candidates per artwork where ``engine.candidates = 0``: as many as the engine makes quickly.
# The default engine makes a 30-s clip in under half a second of CPU, two candidates of the
# demo collection in 0.9 s per artwork (benchmarks/candidates.py), so a curator always has a
# choice; Art2Mus spends GPU seconds per clip and, without a scorer, plays the first anyway;
# with one it keeps the best of 3 by image-audio similarity, as the authors' code does.
AUTO_CANDIDATES = {"default": 2}
SCORED_CANDIDATES = 3


def candidates_for(setting: int, engine: Engine) -> int:
    """``engine.candidates``, with 0 ("auto") resolved for the engine that runs."""
    if setting > 0:
        return setting
    if getattr(engine, "scorer", None) is not None:
        return SCORED_CANDIDATES
    return AUTO_CANDIDATES.get(engine.name, 1)


def candidate_seed(image_hash: str, base_seed: int, index: int | str) -> int:
    """The seed of candidate ``index`` for an image: from its content hash and the config seed."""
    digest = hashlib.sha256(f"{image_hash}:{base_seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class Worker:
    """Generates clips for queued jobs with one engine; see the module docstring."""

    def __init__(
        self,
        db: Database,
        engine: Engine,
        config: Config,
        worker_id: str | None = None,
        on_clip: Callable[[int, int | None], None] | None = None,
        batch_artworks: bool = False,
    ):
        self.db = db
        self.engine = engine
        self.config = config
        self.clips = ClipStore(db)
        self.jobs = JobQueue(db)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        #: Called with (clip_id, artwork_id) after each clip is stored (the kiosk's demo mode).
        self.on_clip = on_clip
        #: Put several artworks into one engine call (see the module docstring).
        self.batch_artworks = batch_artworks
        self._results: list[JobResult] = []  # results of a batch not handed out yet
        settings = config.engine
        self.duration = clip_duration(config, engine.name)
        self.seed = int(settings.seed)
        self.candidates = candidates_for(int(settings.candidates), engine)
        # 0 ("auto"): the engine's own choice (the diffusion engine sizes it from GPU memory).
        self.batch_size = int(settings.batch_size) or int(getattr(engine, "batch_size", 4))
        self.max_attempts = int(settings.max_attempts)
        self.stale_seconds = float(getattr(settings, "stale_seconds", 120.0))
        self.failed_retry_s = float(getattr(settings, "failed_retry_hours", 24.0)) * 3600
        store = config.store
        self.min_free_bytes = int(getattr(store, "min_free_megabytes", 0)) * 1024 * 1024
        self.integrity_every_s = float(getattr(store, "integrity_check_hours", 0.0)) * 3600
        self.missing_grace_s = float(getattr(store, "missing_grace_days", 30.0)) * 86400
        self._pruned_at = time.monotonic()  # the first prune a day after the start
        #: Machine conditions met now (for the log and the status report).
        self.conditions = Conditions(db)
        #: The wait between tries while a machine fault lasts.
        self.backoff = Backoff(base=1.0, cap=300.0)
        #: Called after a damaged database was set aside and made anew (the service rescans).
        self.on_rebuilt: Callable[[], None] | None = None
        self._repeats = RepeatFilter(60.0)
        self._fault_this_turn: Fault | None = None
        self._maintained_at = -MAINTENANCE_SECONDS  # monotonic; the first turn maintains
        self._checked_at = time.monotonic()  # the start's quick check counts as the first
        self._clock = _ClockWatch()
        self.disk_check_s = DISK_CHECK_SECONDS

    # -- queueing --------------------------------------------------------------------------

    @property
    def params_hash(self) -> str:
        return clip_params_hash(self.engine, self.duration)

    def enqueue_missing(self) -> int:
        """Queue pregeneration for every ready artwork that lacks clips; returns how many.

        Artworks with enough clips, with an open job, or whose job already failed for the same
        image are left alone (a failed image is not retried forever; see ``retry_failed``).
        Set-based and chunked (``JobQueue.enqueue_missing``): a million artworks queue in
        seconds, and other workers claim the first jobs meanwhile.
        """
        e = self.engine
        queued = self.jobs.enqueue_missing(
            engine=e.name,
            model_version=e.model_version,
            params_hash=self.params_hash,
            candidates=self.candidates,
            max_attempts=self.max_attempts,
        )
        if queued:
            log.info("queued %d artworks for the %s engine", queued, e.name)
        return queued

    def pending(self) -> int:
        """Jobs this worker could take now or that are running."""
        names = [self.engine.name, "", "auto"]
        with self.db.read() as s:
            return s.execute(
                select(func.count())
                .select_from(Job)
                .where(
                    Job.engine.in_(names),
                    Job.status.in_((JobStatus.QUEUED, JobStatus.RUNNING)),
                )
            ).scalar_one()

    # -- working ---------------------------------------------------------------------------

    def run_once(self) -> JobResult | None:
        """Take and do one job; None when the queue has nothing for this worker.

        With ``batch_artworks`` the jobs are done a batch at a time (:meth:`run_batch`) and
        their results handed out one per call, so ``run`` and ``run_until_idle`` are the same.
        """
        if self.batch_artworks:
            if not self._results:
                self._results = self.run_batch()
            return self._results.pop(0) if self._results else None
        self.jobs.requeue_stale(self.stale_seconds)
        job = self._claim()
        if job is None:
            return None
        item = self._plan(job)
        return item if isinstance(item, JobResult) else self._generate_alone(item)

    def run_batch(self) -> list[JobResult]:
        """Claim jobs until their clips fill ``batch_size`` and generate them together (one
        engine call per duration); the results of every job claimed, [] when none is queued."""
        self.jobs.requeue_stale(self.stale_seconds)
        results: list[JobResult] = []
        planned: list[_JobInHand] = []
        while sum(len(p.seeds) for p in planned) < self.batch_size:
            job = self._claim()
            if job is None:
                break
            item = self._plan(job)
            if isinstance(item, JobResult):
                results.append(item)
            else:
                planned.append(item)
        by_duration: dict[float, list[_JobInHand]] = defaultdict(list)
        for item in planned:
            by_duration[item.duration].append(item)
        for duration, group in by_duration.items():
            results += self._generate_together(duration, group)
        return results

    def recover_orphans(self) -> int:
        """Put back at once the jobs held by dead worker processes of this machine (a service
        killed and restarted by systemd), instead of waiting for their heartbeats to go stale."""
        host = socket.gethostname()
        n = self.jobs.requeue_orphans(f"{host}:", _process_alive)
        if n:
            # A machine fault (kill -9, OOM, power cut): the attempts were given back.
            log.warning(
                "took back %d jobs of workers on %s that ended mid-job (not counted as attempts)", n, host
            )
        forget_ended(self.db, _process_alive)  # their conditions can no longer be "active"
        return n

    def run(self, stop_event: threading.Event, idle_poll_s: float = 1.0) -> None:
        """Work until ``stop_event`` is set, polling the queue while it is empty; machine faults
        pause it with back-off, never end it."""
        log.info("worker %s running the %s engine", self.worker_id, self.engine.name)
        self._guard(self.recover_orphans)
        while not stop_event.is_set():
            if self._disk_low():
                stop_event.wait(self.disk_check_s)
                continue
            self._fault_this_turn = None
            self._guard(self._maintain)
            result = self._guard(self.run_once)
            if self._fault_this_turn is not None:
                stop_event.wait(self.backoff.next_delay())
                continue
            self._turn_went_well(result)
            if result is None:
                stop_event.wait(idle_poll_s)

    def _guard(self, fn: Callable[[], T]) -> T | None:
        """Run one step of the loop: a machine fault becomes a condition (one WARNING, no
        traceback) and a back-off; anything else is a bug, logged with its traceback (at
        most once a minute for the same error)."""
        try:
            return fn()
        except Exception as exc:
            self._on_fault_or_bug(exc)
            return None

    def _on_fault_or_bug(self, exc: Exception) -> None:
        fault = classify(exc)
        if fault == Fault.DB_DAMAGED:
            self._heal(exc)
        elif fault is not None:
            self._note_fault(fault, f"{self.db.path}: {_describe(exc)}")
        else:
            allowed, held = self._repeats.allow(f"{type(exc).__name__}:{exc}")
            if allowed:
                more = f" ({held} more like it since the last report)" if held else ""
                log.exception("worker: unexpected error%s", more)
            self._fault_this_turn = self._fault_this_turn or Fault.DB_UNAVAILABLE

    def _note_fault(self, fault: Fault, message: str) -> None:
        self._fault_this_turn = fault
        self.conditions.start(fault, message)

    def _turn_went_well(self, result: JobResult | None) -> None:
        """End the conditions this turn proved over, and the back-off."""
        keep = {Fault.DISK_LOW}
        if result is None or result.status not in (JobOutcome.DONE, JobOutcome.SKIPPED):
            keep.update(_JOB_FAULTS)  # only a job done shows the disk takes clips again
        self.conditions.end_all_but(keep)
        done = result is not None and result.status == JobOutcome.DONE
        if done or not self.conditions.active():
            self.backoff.reset()

    def _heal(self, exc: BaseException) -> None:
        """The database said it is damaged: set it aside, make it anew, have it rebuilt."""
        self._fault_this_turn = Fault.DB_DAMAGED
        if self.db.heal(str(exc)):
            self.conditions = Conditions(self.db)  # the old rows went aside with the file
            if self.on_rebuilt is not None:
                self.on_rebuilt()
            self.enqueue_missing()

    # -- housekeeping ----------------------------------------------------------------------

    def _maintain(self) -> None:
        """Every MAINTENANCE_SECONDS: the clock, failed jobs' cool-down, what lacks clips, and
        the scheduled integrity check."""
        now = time.monotonic()
        jump = self._clock.jumped()
        if jump is not None:
            self._note_fault(
                Fault.CLOCK_JUMP,
                f"the system clock jumped by {jump:+.0f} s; jobs whose heartbeat looks stale "
                "are handed back without counting an attempt",
            )
            self._fault_this_turn = None  # nothing to wait for: only say so
        if now - self._maintained_at < MAINTENANCE_SECONDS:
            return
        self._maintained_at = now
        retried = self.jobs.retry_cooled_down(self.failed_retry_s)
        if retried:
            log.info("retrying %d failed jobs after their cool-down", retried)
        self.enqueue_missing()
        if self.integrity_every_s > 0 and now - self._checked_at >= self.integrity_every_s:
            self._checked_at = now
            self._integrity_check()
        if now - self._pruned_at >= PRUNE_SECONDS:
            self._pruned_at = now
            self._prune()

    def _prune(self) -> None:
        """Remove clips no longer needed and hand back the space, when that is cheap (an
        incremental vacuum; the one-off full VACUUM of an old file is left to `store prune`)."""
        from engine.store.clip_files import sweep_orphans
        from engine.store.prune import plan_prune, prune_counting_bytes, reclaim

        orphans, orphan_bytes = sweep_orphans(self.db)
        if orphans:
            log.info("removed %d clip files no clip names (%.1f MB)", orphans, orphan_bytes / 1e6)
        items = plan_prune(self.db, self.missing_grace_s)
        if not items:
            return
        deleted, files_freed = prune_counting_bytes(self.db, items)
        freed, how = reclaim(self.db, full_vacuum=False)
        log.info(
            "pruned %d clips no longer needed; %.1f MB of clip files and %.1f MB of the database "
            "handed back (%s)",
            deleted,
            files_freed / 1e6,
            freed / 1e6,
            how,
        )

    def move_clip_audio_to_files(self, stop: Callable[[], bool] | None = None) -> int:
        """Move the audio blobs of a store made before clip files into files (resumes an
        interrupted move; ``stop()`` ends it between batches), then hand the space back where
        that is cheap; returns how many."""
        from engine.store.clip_files import move_blobs_to_files
        from engine.store.prune import reclaim

        moved = move_blobs_to_files(self.db, stop=stop)
        if moved:
            freed, how = reclaim(self.db, full_vacuum=False)
            log.info("%.1f MB of the database handed back (%s)", freed / 1e6, how)
        return moved

    def _integrity_check(self) -> None:
        started = time.monotonic()
        problem = self.db.integrity_check()
        log.info(
            "integrity check of %s: %s (%.1f s)", self.db.path, problem or "ok", time.monotonic() - started
        )
        if problem is not None:
            self._heal(RuntimeError(problem))

    def _disk_low(self) -> bool:
        """Whether generation must pause: free space under ``store.min_free_megabytes``. It
        resumes 10 % (at least 64 MB) above, so that one clip does not toggle it."""
        if self.min_free_bytes <= 0:
            return False
        try:
            free = shutil.disk_usage(self.db.path.parent).free
        except OSError:
            return False
        paused = self.conditions.is_active(Fault.DISK_LOW)
        margin = max(64 * 1024 * 1024, self.min_free_bytes // 10) if paused else 0
        if free >= self.min_free_bytes + margin:
            self.conditions.end(Fault.DISK_LOW)
            return False
        self.conditions.start(
            Fault.DISK_LOW,
            f"{free / 1e6:.0f} MB free on {self.db.path.parent}, under store.min_free_megabytes = "
            f"{self.min_free_bytes // (1024 * 1024)}: generation paused until space returns",
        )
        return True

    def run_until_idle(self, progress: Callable[[JobResult], None] | None = None) -> WorkerSummary:
        """Do jobs until none is left for this worker (waiting for jobs that back off after a
        machine fault); returns what was done."""
        summary = WorkerSummary()
        started = time.monotonic()
        self.recover_orphans()
        while True:
            self._fault_this_turn = None
            while (result := self.run_once()) is not None:
                summary.add(result)
                if progress is not None:
                    progress(result)
                if self._fault_this_turn is not None:  # the machine, not the job: wait, retry
                    time.sleep(self.backoff.next_delay())
                    self._fault_this_turn = None
                else:
                    self._turn_went_well(result)
            wait = self.jobs.next_ready_in([self.engine.name])
            if wait is None:
                break
            time.sleep(min(wait, MAINTENANCE_SECONDS) + 0.05)
        summary.seconds = time.monotonic() - started
        return summary

    # -- one job ---------------------------------------------------------------------------

    def _claim(self) -> Job | None:
        return self.jobs.claim(self.worker_id, engines=[self.engine.name])

    def _plan(self, job: Job) -> _JobInHand | JobResult:
        """Start the claimed job's heartbeat, load its image and work out the seeds it still
        needs; a JobResult instead when the job ends here (skipped, failed, nothing to make)."""
        item = _JobInHand(job, _Heartbeat(self.jobs, job.id, self.worker_id, self.stale_seconds / 4))
        item.beat.start()
        try:
            if job.image_hash is None:
                raise JobSkipped(f"job {job.id} names no image")
            item.image_hash = job.image_hash
            item.path = self._image_path(self._artwork(job))
            item.image = self._load(item.path, item.image_hash)
            params = json.loads(job.params_json or "{}")
            item.duration = float(params.get("duration", self.duration))
            base_seed = int(params.get("seed", self.seed))
            count = candidates_for(int(params.get("candidates", self.candidates)), self.engine)
            e = self.engine
            key = (item.image_hash, e.name, e.model_version, clip_params_hash(e, item.duration))
            item.existing = self.clips.find(*key)
            item.seeds = _seeds_to_make(job, item.image_hash, base_seed, count, item.existing)
        except JobSkipped as exc:
            return self._finish_skipped(item, exc)
        except Exception as exc:
            return self._finish_failed(item, exc)
        if not item.seeds:  # every candidate is cached already
            return self._finish_done(item)
        return item

    def _generate_alone(self, item: _JobInHand) -> JobResult:
        """The job's candidates, ``batch_size`` per engine call, each batch stored when made."""
        try:
            for start in range(0, len(item.seeds), self.batch_size):
                seeds = item.seeds[start : start + self.batch_size]
                self._store(item, self.engine.generate_batch([item.image] * len(seeds), item.duration, seeds))
            self._choose(item)
        except Exception as exc:
            return self._finish_failed(item, exc)
        return self._finish_done(item)

    def _generate_together(self, duration: float, group: list[_JobInHand]) -> list[JobResult]:
        """One engine call for the clips of every job in ``group``, then store and finish each."""
        images = [item.image for item in group for _ in item.seeds]
        seeds = [seed for item in group for seed in item.seeds]
        try:
            clips = self.engine.generate_batch(images, duration, seeds)
        except Exception as exc:
            return [self._finish_failed(item, exc) for item in group]
        results = []
        at = 0
        for item in group:
            mine, at = clips[at : at + len(item.seeds)], at + len(item.seeds)
            try:
                self._store(item, mine)
                self._choose(item)
            except Exception as exc:
                results.append(self._finish_failed(item, exc))
            else:
                results.append(self._finish_done(item))
        log.info(
            "batch of %d clips for %d artworks in %.1f s",
            len(clips),
            len(group),
            time.monotonic() - min(item.started for item in group),
        )
        return results

    def _store(self, item: _JobInHand, clips: list[GeneratedClip]) -> None:
        """Store each clip of the job (in its own transaction) and tell ``on_clip``."""
        for clip in clips:
            clip_id = self.clips.put(
                image_hash=item.image_hash,
                artwork_id=item.job.artwork_id,
                engine=self.engine,
                clip=clip,
                chosen=False if (item.existing or item.made) else None,
            )
            item.made.append((clip_id, clip))
            if self.on_clip is not None:
                try:
                    self.on_clip(clip_id, item.job.artwork_id)
                except Exception:
                    log.exception("on_clip callback failed")

    def _choose(self, item: _JobInHand) -> None:
        """Pick the clip to play among the first ones made: the best-scored.

        New candidates of a regenerate job stand beside the clips there are and are never
        chosen here: the clip playing now plays on until the curator picks another.
        """
        made, existing = item.made, item.existing
        if not made or existing:
            return
        scored = [(c.score, cid) for cid, c in made if c.score is not None]
        if len(made) > 1 and scored:
            self.clips.choose(max(scored)[1])

    # -- the job's end: heartbeat stopped, the queue told, the result -------------------------

    def _finish_done(self, item: _JobInHand) -> JobResult:
        item.beat.stop()
        self.jobs.complete(item.job.id, self.worker_id)
        result = self._result(item, JobOutcome.DONE, len(item.made))
        if item.made:
            log.info(
                "made %d clip%s for %s (artwork %s, job %d) in %.1f s",
                len(item.made),
                "" if len(item.made) == 1 else "s",
                item.path,
                item.job.artwork_id,
                item.job.id,
                result.seconds,
            )
            self._checkpoint()
        return result

    def _checkpoint(self) -> None:
        try:
            self.db.checkpoint()
        except Exception as exc:  # only durability against a lost -wal is delayed
            log.debug("WAL checkpoint failed: %s", exc)

    def _finish_skipped(self, item: _JobInHand, exc: JobSkipped) -> JobResult:
        item.beat.stop()
        self.jobs.complete(item.job.id, self.worker_id)
        log.info("job %d skipped: %s", item.job.id, exc)
        return self._result(item, JobOutcome.SKIPPED, path=str(item.path) or str(exc))

    def _finish_failed(self, item: _JobInHand, exc: Exception) -> JobResult:
        """Record the failed attempt: the job is queued again, or failed after its last attempt.
        A machine fault instead gives the job back without counting the attempt."""
        item.beat.stop()
        fault = classify(exc)
        if fault is not None:
            return self._finish_fault(item, fault, exc)
        job, error = item.job, _describe(exc)
        status = self.jobs.fail(job.id, error, self.worker_id)
        log.warning(
            "job %d (artwork %s) attempt %d/%d failed: %s",
            job.id,
            job.artwork_id,
            job.attempts,
            job.max_attempts,
            error,
        )
        log.debug("job %d failed", job.id, exc_info=exc)
        # Requeued means another attempt; anything else (failed for good, or a job another worker
        # took over meanwhile) counts as failed for this worker.
        outcome = JobOutcome.QUEUED if status == JobStatus.QUEUED else JobOutcome.FAILED
        return self._result(item, outcome, error=error)

    def _finish_fault(self, item: _JobInHand, fault: Fault, exc: Exception) -> JobResult:
        """The machine failed, not the artwork: the job goes back as it was, the loop backs off."""
        error = _describe(exc)
        if fault == Fault.DB_DAMAGED:
            self._heal(exc)
        else:
            self._note_fault(fault, f"{self.db.path}: {error}")
            try:
                self.jobs.release(item.job.id, fault, error, self.worker_id)
            except Exception as again:  # the same fault: the stale heartbeat returns the job later
                log.debug("job %d stays claimed until its heartbeat is stale: %s", item.job.id, again)
        log.debug("job %d met %s", item.job.id, fault, exc_info=exc)
        return self._result(item, JobOutcome.QUEUED, error=f"{fault}: {error}")

    @staticmethod
    def _result(
        item: _JobInHand, status: JobOutcome, clips: int = 0, error: str = "", path: str | None = None
    ) -> JobResult:
        path = str(item.path) if path is None else path
        return JobResult(
            item.job.id, item.job.artwork_id, path, status, clips, error, time.monotonic() - item.started
        )

    def _artwork(self, job: Job) -> Artwork:
        if job.artwork_id is None:
            raise JobSkipped(f"job {job.id} names no artwork")
        with self.db.read() as s:
            artwork = s.get(Artwork, job.artwork_id)
        if artwork is None:
            raise JobSkipped(f"artwork {job.artwork_id} was removed from the catalog")
        if artwork.image_hash != job.image_hash:
            raise JobSkipped(f"{artwork.path}: the image changed since the job was queued")
        if artwork.status == ArtworkStatus.INVALID:
            raise JobSkipped(f"{artwork.path}: marked invalid ({artwork.reason})")
        return artwork

    def _image_path(self, artwork: Artwork) -> Path:
        path = Path(artwork.path)
        return path if path.is_absolute() else Path(self.config.collection.path) / path

    def _load(self, path: Path, image_hash: str) -> npt.NDArray[np.uint8]:
        from engine.catalog.images import load_rgb, sha256_file

        if not path.exists():
            raise JobSkipped(f"{path}: the file is gone (the catalog will mark it missing)")
        if sha256_file(path) != image_hash:
            raise JobSkipped(f"{path}: the file changed since the job was queued")
        return load_rgb(path, max_pixels=self.config.catalog.max_image_pixels, max_side=LOAD_MAX_SIDE)


def _seeds_to_make(
    job: Job, image_hash: str, base_seed: int, count: int, existing: list[ClipInfo]
) -> list[int]:
    """The candidates' seeds: the missing ones, or for a regenerate job ``count`` fresh ones."""
    if job.kind == JobKind.REGENERATE:
        # Fresh seeds, different for every regenerate job (and still reproducible).
        return [candidate_seed(image_hash, base_seed, f"regenerate-{job.id}-{i}") for i in range(count)]
    have = {c.seed for c in existing}
    return [s for s in (candidate_seed(image_hash, base_seed, i) for i in range(count)) if s not in have]


def _process_alive(worker_id: str) -> bool:
    """Whether the process of a worker id "host:pid:tag" on this machine still runs."""
    try:
        pid = int(worker_id.split(":")[1])
    except (IndexError, ValueError):
        return True  # not an id this machine made: let the heartbeat decide
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def _describe(exc: BaseException) -> str:
    text = one_line(exc)
    # Plain words for errors that carry them (SQLite's through SQLAlchemy included).
    plain = (ValueError, RuntimeError, OSError, DBAPIError)
    return text if isinstance(exc, plain) else f"{type(exc).__name__}: {text}"


class _Heartbeat:
    """Tells the queue every ``interval`` seconds that the job is still being worked on."""

    def __init__(self, jobs: JobQueue, job_id: int, worker_id: str, interval: float):
        self.jobs, self.job_id, self.worker_id = jobs, job_id, worker_id
        self.interval = max(0.2, interval)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.jobs.heartbeat(self.job_id, self.worker_id):
                    log.warning("job %d is no longer held by %s", self.job_id, self.worker_id)
                    return
            except Exception as exc:
                if classify(exc) is None:
                    log.exception("heartbeat for job %d failed", self.job_id)
                else:  # the worker's loop reports the condition once
                    log.debug("heartbeat for job %d failed: %s", self.job_id, exc)


class _ClockWatch:
    """Notices a jump of the wall clock (NTP at boot, a battery-less PC, a person) by comparing
    it with the monotonic clock, which never jumps."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._now = wall
        self._wall, self._mono = wall(), time.monotonic()

    def jumped(self) -> float | None:
        """Seconds the wall clock jumped since the last call, or None."""
        wall, mono = self._now(), time.monotonic()
        drift = (wall - self._wall) - (mono - self._mono)
        self._wall, self._mono = wall, mono
        return drift if abs(drift) > CLOCK_JUMP_SECONDS else None
