"""The engine service (`art2mus engine serve`): catalog in step, clips generated, jobs served.

One process on the exhibition PC, run by systemd (systemd/art2mus-engine.service):

1. keeps the catalog in step with the collection folder: ``engine.catalog.watcher``'s
   ``CatalogWatcher`` scans it, then follows every change (watchdog); if the folder cannot be
   watched (not there yet), it is rescanned every ``RESCAN_SECONDS`` instead;
2. queues pregeneration for every new or changed artwork;
3. runs the worker loop, which also serves the kiosk's jobs (camera captures and visitors
   first).

SIGTERM (systemd stop) sets the stop event: the job in hand is finished and stored, then the
watcher and the database are closed and the process exits 0.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.beacons import BeaconWriter, read_beacons
from engine.catalog.scanner import ScanError, ScanSummary, scan_collection
from engine.catalog.watcher import CatalogWatcher
from engine.config import uses_default_pin
from engine.health import DEFAULT_PIN_WARNING, ServiceName, health_report
from engine.health_server import HealthServer
from engine.sd_notify import Watchdog, notify
from engine.store.faults import classify, one_line
from engine.store.status import record_engine

if TYPE_CHECKING:
    from engine.worker import Worker

log = logging.getLogger(__name__)

RESCAN_SECONDS = 30.0


class LoopPulse(threading.Event):
    """The stop event handed to ``Worker.run``, noting when its loop last turned.

    ``Worker.run`` asks ``is_set()`` once per turn of its loop (and waits on the event while the
    queue is empty), so the time of the last ask says whether the loop still turns, without the
    worker knowing about systemd. The engine's watchdog pings only while it is recent.
    """

    def __init__(self, stop: threading.Event):
        super().__init__()
        self.stop = stop
        self.last_turn = time.monotonic()
        self.waiting = 0

    def is_set(self) -> bool:
        self.last_turn = time.monotonic()
        return self.stop.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        # Waiting (for work, or out a back-off) is the loop turning slowly, not hanging.
        self.waiting += 1
        try:
            return self.stop.wait(timeout)
        finally:
            self.waiting -= 1
            self.last_turn = time.monotonic()

    def idle_seconds(self) -> float:
        """Seconds since the loop last turned; 0 while it waits on purpose."""
        return 0.0 if self.waiting else time.monotonic() - self.last_turn

    def set(self) -> None:
        self.stop.set()


class EngineService:
    """Runs ``worker`` and keeps the catalog of its database and configuration in step."""

    def __init__(self, worker: Worker, reason: str = ""):
        self.worker = worker
        # Why this engine runs (from resolve_engine), recorded for the kiosk's curator panel.
        self.reason = reason or f"{worker.engine.name} engine"
        self.db = worker.db
        self.config = worker.config
        self.folder = self.config.collection.path
        self._watcher: CatalogWatcher | None = None
        self._poller: threading.Thread | None = None

    def run(self, stop: threading.Event) -> None:
        """Serve until ``stop`` is set."""
        engine = self.worker.engine
        self._tolerate_fault(lambda: record_engine(self.db, engine.name, engine.model_version, self.reason))
        pulse = LoopPulse(stop)
        beacon = BeaconWriter(
            self.db.path,
            ServiceName.ENGINE,
            extra=lambda: {
                "engine": engine.name,
                "loop_idle_s": round(pulse.idle_seconds(), 1),
            },
        )
        self._say_if_not_alone()
        beacon.start()
        if uses_default_pin(self.config):
            log.warning(DEFAULT_PIN_WARNING)
        health = self._start_health()
        self._start_watching(stop)
        # A database found damaged while serving is made anew: fill it from the collection.
        self.worker.on_rebuilt = self._rebuild
        watchdog = Watchdog(lambda: self._loop_trouble(pulse))
        try:
            self._tolerate_fault(self.worker.enqueue_missing)  # what the catalog already holds
            notify(f"READY=1\nSTATUS=serving with the {engine.name} engine")
            watchdog.start()
            self._start_moving_clip_audio(stop)
            self.worker.run(pulse)
        finally:
            notify("STOPPING=1")
            watchdog.stop()
            self._stop_watching()
            if health is not None:
                health.stop()
            beacon.stop()

    def _say_if_not_alone(self) -> None:
        """Two engine services on one database both work its queue (nothing is done twice:
        claims are atomic), but on one PC that is usually a mistake: say so once, plainly."""
        others = [b for b in read_beacons(self.db.path) if b.service == ServiceName.ENGINE and b.alive]
        for other in others:
            log.warning(
                "another engine service already serves this database (%s:%d, started %s); both "
                "take jobs from its queue. Stop one unless that is intended",
                other.host,
                other.pid,
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(other.started_at)),
            )

    def _start_moving_clip_audio(self, stop: threading.Event) -> None:
        """A store made before clip files: move its audio out of the database in a thread, a
        batch per transaction, while the service already serves (gigabytes take minutes, more
        than systemd waits for READY; the kiosk reads a clip from its blob until it is moved).
        Stopped between batches at shutdown; the next start resumes it."""

        def move() -> None:
            self._tolerate_fault(lambda: self.worker.move_clip_audio_to_files(stop.is_set))

        threading.Thread(target=move, name="clip-audio-move", daemon=True).start()

    def _loop_trouble(self, pulse: LoopPulse) -> str | None:
        """None while the worker loop turns; else why the watchdog should let systemd restart us."""
        idle = pulse.idle_seconds()
        limit = self.config.health.stall_seconds
        # The same words while the trouble lasts: the watchdog logs each new reason once.
        return (
            f"the worker loop has not turned for more than {limit:g} s (health.stall_seconds)"
            if idle > limit
            else None
        )

    def _start_health(self) -> HealthServer | None:
        listen = self.config.health.listen
        if not listen:
            return None
        try:
            return HealthServer(listen, lambda: health_report(self.config, self.db.path)).start()
        except OSError as exc:
            # A port in use must not stop the music: say so and serve without the endpoint.
            log.error("cannot serve the health endpoint on %s: %s", listen, exc.strerror or exc)
            return None

    def _tolerate_fault(self, step: Callable[[], object]) -> None:
        """Run a start-up step; a machine fault (disk full, database busy) is said in one line
        and left to the worker loop, which retries with back-off. A bug still raises."""
        try:
            step()
        except Exception as exc:
            fault = classify(exc)
            if fault is None:
                raise
            log.warning("engine service: %s at start (%s); the worker retries", fault, one_line(exc))

    # -- catalog ---------------------------------------------------------------------------

    def _start_watching(self, stop: threading.Event) -> None:
        """Watch the folder (its first scan runs in the watcher's thread); else poll it."""
        watcher = CatalogWatcher(self.db, self.folder, self.config.catalog, on_change=self._changed)
        try:
            watcher.start()
        except ScanError as exc:
            # E.g. a collection on a drive not mounted yet: keep serving jobs, look again later.
            log.error("cannot watch the collection: %s; trying again every %.0f s", exc, RESCAN_SECONDS)
            self._start_polling(stop)
            return
        self._watcher = watcher

    def _rebuild(self) -> None:
        log.info("rebuilding the catalog of %s from %s", self.db.path, self.folder)
        if self._watcher is not None:
            self._watcher.request_full_scan()
        else:
            self._scan()

    def _start_polling(self, stop: threading.Event) -> None:
        self._poller = threading.Thread(target=self._poll, args=(stop,), name="catalog-poll", daemon=True)
        self._poller.start()

    def _poll(self, stop: threading.Event) -> None:
        while True:
            try:
                self._scan()
            except Exception:
                log.exception("rescan failed")
            if stop.wait(RESCAN_SECONDS):
                return

    def _scan(self) -> None:
        try:
            summary = scan_collection(self.db, self.folder, self.config.catalog)
        except ScanError as exc:
            log.error("cannot scan the collection: %s", exc)
            return
        if summary.changed:
            self._changed(summary)

    def _changed(self, summary: ScanSummary) -> None:
        """The catalog changed (called from the watcher's or the poller's thread): queue what needs clips."""
        log.info(
            "catalog %s: %d added, %d updated, %d renamed, %d missing, %d invalid",
            self.folder,
            summary.added,
            summary.updated,
            summary.renamed,
            summary.missing,
            summary.invalid,
        )
        for path, reason in summary.invalid_items:
            log.warning("invalid artwork %s: %s", path, reason)
        try:
            queued = self.worker.enqueue_missing()
        except Exception:
            log.exception("cannot queue the changed artworks")
            return
        if queued:
            log.info("%d artworks queued for clips", queued)

    def _stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        if self._poller is not None:
            self._poller.join(timeout=5)
