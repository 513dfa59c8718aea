"""A worker that puts several artworks into one ``generate_batch`` call (one GPU batch).

The plain :class:`engine.worker.Worker` does one job (one artwork) at a time, batching only
that artwork's candidates. A GPU engine is several times faster per clip on a batch of
artworks (benchmarks/engine_gpu.py), so this worker claims jobs until their clips fill
``engine.batch_size``, generates all of them in one call per duration, then stores, chooses
and completes each job exactly as the plain worker does. Everything else — claiming,
heartbeats, attempts and failure text, skipping changed or removed images, the clip cache —
is the plain worker's.

``run_once`` still returns one :class:`JobResult` per call (the rest of a batch's results are
handed out by the following calls), so ``run`` and ``run_until_idle`` work unchanged.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.engines.base import GeneratedClip
from engine.store.clips import clip_params_hash
from engine.store.models import Job, JobStatus
from engine.worker import JobResult, JobSkipped, Worker, _describe, _Heartbeat, candidate_seed

log = logging.getLogger(__name__)


@dataclass
class _Prepared:
    job: Job
    artwork: Any
    path: Path
    image: Any
    duration: float
    seeds: list[int]
    existing: list
    beat: _Heartbeat
    started: float
    made: list[tuple[int, GeneratedClip]] = field(default_factory=list)


class BatchWorker(Worker):
    """Like :class:`Worker`, but generates the clips of several artworks in one engine call."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._results: list[JobResult] = []

    def run_once(self) -> JobResult | None:
        if not self._results:
            self._results = self.run_batch()
        return self._results.pop(0) if self._results else None

    def run_batch(self) -> list[JobResult]:
        """Claim jobs until their clips fill a batch, do them together; [] when none is queued."""
        self.jobs.requeue_stale(self.stale_seconds)
        results: list[JobResult] = []
        prepared: list[_Prepared] = []
        while sum(len(p.seeds) for p in prepared) < self.batch_size:
            job = self.jobs.claim(self.worker_id, engines=[self.engine.name])
            if job is None:
                break
            item = self._prepare(job, results)
            if item is not None:
                prepared.append(item)
        by_duration: dict[float, list[_Prepared]] = defaultdict(list)
        for item in prepared:
            by_duration[item.duration].append(item)
        for duration, group in by_duration.items():
            results += self._generate(duration, group)
        return results

    # -- steps -----------------------------------------------------------------------------

    def _prepare(self, job: Job, results: list[JobResult]) -> _Prepared | None:
        """Load the job's image and work out its seeds (as Worker._do); None if it is done already."""
        started = time.monotonic()
        beat = _Heartbeat(self.jobs, job.id, self.worker_id, self.stale_seconds / 4)
        beat.start()
        path = ""
        try:
            artwork = self._artwork(job)
            path = self._image_path(artwork)
            image = self._load(path, job.image_hash)
            params = json.loads(job.params_json or "{}")
            duration = float(params.get("duration", self.duration))
            base_seed = int(params.get("seed", self.seed))
            count = int(params.get("candidates", self.candidates))
            e = self.engine
            existing = self.clips.find(job.image_hash, e.name, e.model_version, clip_params_hash(e, duration))
            if job.kind == "regenerate":
                seeds = [candidate_seed(job.image_hash, base_seed, f"regenerate-{job.id}-{i}") for i in range(count)]
            else:
                have = {c.seed for c in existing}
                seeds = [s for s in (candidate_seed(job.image_hash, base_seed, i) for i in range(count))
                         if s not in have]
        except JobSkipped as exc:
            beat.stop()
            self.jobs.complete(job.id, self.worker_id)
            log.info("job %d skipped: %s", job.id, exc)
            results.append(JobResult(job.id, job.artwork_id, str(path) or str(exc), "skipped", 0, "",
                                     time.monotonic() - started))
            return None
        except Exception as exc:
            results.append(self._failed(job, beat, str(path), exc, started))
            return None
        if not seeds:  # every candidate is cached already
            beat.stop()
            self.jobs.complete(job.id, self.worker_id)
            results.append(JobResult(job.id, job.artwork_id, str(path), JobStatus.DONE, 0, "",
                                     time.monotonic() - started))
            return None
        return _Prepared(job, artwork, path, image, duration, seeds, existing, beat, started)

    def _generate(self, duration: float, group: list[_Prepared]) -> list[JobResult]:
        """One engine call for the whole group, then store and finish each job."""
        images = [item.image for item in group for _ in item.seeds]
        seeds = [seed for item in group for seed in item.seeds]
        try:
            clips = self.engine.generate_batch(images, duration, seeds)
        except Exception as exc:
            return [self._failed(item.job, item.beat, str(item.path), exc, item.started) for item in group]
        results = []
        at = 0
        for item in group:
            mine, at = clips[at : at + len(item.seeds)], at + len(item.seeds)
            try:
                self._store(item, mine)
            except Exception as exc:
                results.append(self._failed(item.job, item.beat, str(item.path), exc, item.started))
                continue
            item.beat.stop()
            self.jobs.complete(item.job.id, self.worker_id)
            results.append(JobResult(item.job.id, item.job.artwork_id, str(item.path), JobStatus.DONE,
                                     len(item.made), "", time.monotonic() - item.started))
        log.info("batch of %d clips for %d artworks in %.1f s", len(clips), len(group),
                 time.monotonic() - min(item.started for item in group))
        return results

    def _store(self, item: _Prepared, clips: list[GeneratedClip]) -> None:
        for clip in clips:
            clip_id = self.clips.put(
                image_hash=item.job.image_hash,
                artwork_id=item.artwork.id,
                engine=self.engine,
                clip=clip,
                chosen=False if (item.existing or item.made) else None,
            )
            item.made.append((clip_id, clip))
            if self.on_clip is not None:
                try:
                    self.on_clip(clip_id, item.artwork.id)
                except Exception:
                    log.exception("on_clip callback failed")
        self._choose(item.job, item.existing, item.made)

    def _failed(self, job: Job, beat: _Heartbeat, path: str, exc: Exception, started: float) -> JobResult:
        beat.stop()
        error = _describe(exc)
        status = self.jobs.fail(job.id, error, self.worker_id)
        log.warning("job %d (artwork %s) attempt %d/%d failed: %s",
                    job.id, job.artwork_id, job.attempts, job.max_attempts, error)
        return JobResult(job.id, job.artwork_id, path, status, 0, error, time.monotonic() - started)
