"""Wiring the kiosk to the installation: the store, the player, and in demo mode the engine.

Normal mode (``art2mus kiosk``): the engine service (``art2mus engine serve``) keeps the
catalog and generates clips in its own process; the kiosk reads the shared store, plays, and
enqueues visitor jobs when someone waits for an artwork's music.

Demo mode (``art2mus kiosk --collection FOLDER``): everything in this process, so that one
command shows the whole installation: the catalog watcher (which scans the folder at start
and follows changes), the default engine in a child process (see ``demo_engine``), and the
player.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import Config
from engine.store import Database, JobKind
from engine.store.jobs import OPEN_STATUSES

from .services import ArtworkDetail, EngineInfo, KioskServices

if TYPE_CHECKING:
    from engine.catalog.watcher import CatalogWatcher

    from .demo_engine import DemoEngineProcess

log = logging.getLogger(__name__)

# Leaving the kiosk (curator exit, SIGTERM from systemd) fades the room out over this long.
EXIT_FADE_SECONDS = 2.0


def demo_database_path(collection: Path) -> Path:
    """A per-user database for a demo collection, reused across runs (clips are kept)."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "art2mus"
    digest = hashlib.sha256(str(collection.resolve()).encode()).hexdigest()[:12]
    return base / f"demo-{collection.name}-{digest}.db"


class KioskBackend:
    """Owns the non-Qt parts the kiosk runs: store, player, and in demo mode catalog + engine."""

    def __init__(
        self,
        config: Config,
        *,
        collection: Path | None = None,
        db_path: Path | None = None,
        demo: bool = False,
        player: Any = None,
    ):
        from engine.store.clips import ClipStore
        from engine.store.jobs import JobQueue

        self.config = config
        self.demo = demo
        self.collection = Path(collection or config.collection.path).resolve()
        self.configured_engine = config.engine.name  # what the file says (demo mode overrides it)
        if demo:
            # The demo always runs the CPU default engine, in this process.
            # The worker finds image files under collection.path: make it this folder.
            config = dataclasses.replace(
                config,
                engine=dataclasses.replace(config.engine, name="default"),
                collection=dataclasses.replace(config.collection, path=self.collection),
            )
            self.config = config
            db_path = Path(db_path) if db_path else demo_database_path(self.collection)
        else:
            db_path = Path(db_path) if db_path else config.store.database
        self.db = Database(db_path)
        self.clip_store = ClipStore(self.db)
        self.jobs = JobQueue(self.db)
        self.player = player if player is not None else self._open_player()
        # Demo mode's, made by start().
        self.watcher: CatalogWatcher | None = None
        self.engine_process: DemoEngineProcess | None = None
        self.notify = lambda: None  # set by the window: the store changed, look now
        self.services = KioskServices(
            self.db,
            self.collection,
            player=self.player,
            clip_store=self.clip_store,
            job_queue=self.jobs,
            engine_info=self._initial_engine_info(),
            enqueue_job=self._enqueue,
            rescan=self._rescan,
            quiet_hours=list(config.audio.quiet_hours),
            volume=config.audio.volume,
            demo=demo,
        )

    # -- setup -----------------------------------------------------------------------------
    def _open_player(self):
        from installation.audio import Player

        # A sound card that cannot be recovered must not take the screen with it: the player
        # reports it (curator panel, log) and keeps trying with back-off.
        player = Player(self.config.audio, on_lost=self._audio_lost)
        player.start()
        return player

    @staticmethod
    def _audio_lost(reason: str) -> None:
        log.error(
            "no sound: %s. The kiosk stays up and keeps trying; the curator panel shows the state",
            reason,
        )

    def _initial_engine_info(self) -> EngineInfo | Callable[[], EngineInfo]:
        """Demo mode: filled in when its engine starts. Normal mode: asked of the store."""
        if self.demo:
            return EngineInfo("default", "default engine (demo mode), starting…")
        return self._service_engine_info

    def _service_engine_info(self) -> EngineInfo:
        """Which engine the engine service runs and why, as it recorded when it started."""
        from engine.store.status import read_engine

        try:
            status = read_engine(self.db)
        except Exception as exc:  # the panel must open even if the store misbehaves
            return EngineInfo("unknown", f"cannot read the engine service's status: {exc}")
        if status is None:
            return EngineInfo(
                "none",
                "the engine service (`art2mus engine serve`) has not started yet with this "
                f"database; engine.name = {self.config.engine.name!r}",
            )
        since = status.started_at.strftime("%Y-%m-%d %H:%M")
        return EngineInfo(
            status.engine,
            f"{status.reason} (engine service {status.worker_id}, started {since} UTC)",
            status.model_version,
        )

    def start(self) -> None:
        """Purge expired camera captures; start the demo's catalog watcher and engine."""
        self._purge_captures()
        if not self.demo:
            return
        from engine.catalog.watcher import CatalogWatcher

        from .demo_engine import DemoEngineProcess

        self.engine_process = DemoEngineProcess(self.config, self.db.path, self._engine_started)
        self.engine_process.start()
        self.watcher = CatalogWatcher(
            self.db, self.collection, self.config.catalog, on_change=self._catalog_changed
        )
        self.watcher.start()

    def _engine_started(self, name: str, reason: str, model_version: str) -> None:
        if name == "none":
            log.error("the demo engine cannot start: %s", reason)
            self.services.engine_info = EngineInfo("none", reason)
        else:
            # The child was told engine.name = 'default'; the configuration may say otherwise.
            reason = (
                f"{name} engine: demo mode always composes with the CPU default engine, "
                f"beside the kiosk (the configuration's engine.name = {self.configured_engine!r} "
                "is for the engine service)"
                if name == "default"
                else f"{reason}; demo mode runs it beside the kiosk"
            )
            self.services.engine_info = EngineInfo(name, reason, model_version)
        self.notify()

    def _catalog_changed(self, summary=None) -> None:
        self.notify()
        if self.engine_process is not None:
            self.engine_process.catalog_changed()

    def _purge_captures(self) -> None:
        """Captures live until the kiosk restarts, or ``capture.keep_hours``
        (docs/capture.md); a failure here must not keep the kiosk from starting."""
        from datetime import timedelta

        from engine.capture.keep import purge_captures

        hours = self.config.capture.keep_hours
        try:
            purge_captures(
                self.db, self.config.capture.folder, older_than=timedelta(hours=hours) if hours else None
            )
        except Exception:
            log.exception("purging camera captures")

    # -- services' callbacks ---------------------------------------------------------------
    def _enqueue(self, kind: JobKind, detail: ArtworkDetail, priority: int) -> int | None:
        """Queue a visitor or regenerate job for the engine.

        A visitor waiting for an artwork that already has an open job (pregeneration) only
        raises that job's priority. Otherwise the job names the engine this process runs
        (demo) or "" (normal mode: whichever engine the service runs).
        """
        demo_engine_ready = self.engine_process is not None and self.engine_process.ready
        engine = self.services.engine_info.name if demo_engine_ready else ""
        params = None
        if kind == JobKind.REGENERATE:
            # Distinct parameters keep it apart from an open pregeneration job.
            params = {"candidates": self.config.engine.candidates}
        else:
            open_job = self.jobs.latest_for(detail.id)
            if open_job is not None and open_job.status in OPEN_STATUSES:
                engine = open_job.engine
                params = json.loads(open_job.params_json or "{}") or None
        job_id = self.jobs.enqueue(
            kind,
            artwork_id=detail.id,
            image_hash=detail.image_hash,
            engine=engine,
            params=params,
            priority=priority,
            max_attempts=self.config.engine.max_attempts,
        )
        self.notify()
        return job_id

    def _rescan(self):
        from engine.catalog.scanner import scan_collection

        summary = scan_collection(self.db, self.collection, self.config.catalog)
        self._catalog_changed()
        return summary

    # -- shutdown --------------------------------------------------------------------------
    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.engine_process is not None:
            self.engine_process.stop()
        try:
            self.player.close(fade_seconds=EXIT_FADE_SECONDS)  # leaving fades, never cuts
        except Exception:
            log.exception("closing the player")
        self.db.close()
