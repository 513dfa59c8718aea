"""Demo mode's engine, in a child process of the kiosk.

The default engine composes on the CPU for about a third of a second per clip, mostly in
Python and numpy. In a thread of the kiosk it would compete with the audio callback for the
GIL (measured: callback load peaks of 0.66 of a block and occasional underruns while
composing, against 0.08 in a separate process), so the demo runs it in its own process,
exactly as `art2mus engine serve` does beside the kiosk on the exhibition PC. The kiosk
sees its clips through the shared store, which it polls anyway.

This module must not import Qt: the child process imports it to run :func:`run_demo_engine`.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

from engine.config import Config

log = logging.getLogger(__name__)

STOP_SECONDS = 10.0


def run_demo_engine(config: Config, db_path: Path, stop, catalog_changed, info) -> None:
    """The child's main: make clips for every ready artwork, and for visitors' jobs first.

    ``catalog_changed`` (an Event) asks for new artworks to be queued; ``info`` (a Queue)
    carries one message back: (engine name, why it runs, model version) or ("none", error).
    """
    # Ctrl+C in the terminal reaches the whole process group, this child included: the kiosk
    # stops it itself (the clip in hand finishes), so here it would only print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    kiosk = os.getppid()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s demo-engine: %(message)s")
    from engine.engines.registry import resolve_engine
    from engine.store import Database
    from engine.worker import Worker

    try:
        engine, reason = resolve_engine(config)
    except Exception as exc:
        info.put(("none", f"the engine cannot start: {exc}", ""))
        return
    info.put((engine.name, reason, engine.model_version))
    db = Database(db_path)
    worker = Worker(db, engine, config)
    worker.recover_orphans()
    catalog_changed.set()
    try:
        # A kiosk that died without stopping it (killed, or its X server gone) leaves it
        # orphaned: it then ends by itself.
        while not stop.is_set() and os.getppid() == kiosk:
            if catalog_changed.is_set():
                catalog_changed.clear()
                worker.enqueue_missing()
            if worker.run_once() is None:
                # Not stop.wait(): a process waiting on a multiprocessing Event is a "sleeper"
                # that Event.set() waits to hear from; killed while waiting (with its process
                # group, say), it never answers and the kiosk's stop() hung for ever.
                time.sleep(0.5)
    finally:
        db.close()


class DemoEngineProcess:
    """Starts the child, relays its engine report, asks it to queue new artworks, stops it."""

    def __init__(self, config: Config, db_path: Path, on_info: Callable[[str, str, str], None]):
        ctx = mp.get_context("spawn")  # a clean child: no Qt, no audio stream, no threads
        self._stop = ctx.Event()
        self._changed = ctx.Event()
        self._info = ctx.Queue()
        self._on_info = on_info
        self._process = ctx.Process(
            target=run_demo_engine,
            args=(config, Path(db_path), self._stop, self._changed, self._info),
            name="art2mus-demo-engine",
            daemon=True,
        )
        self._relay = threading.Thread(target=self._relay_info, name="demo-engine-info", daemon=True)
        self.ready = False

    def start(self) -> None:
        self._process.start()
        self._relay.start()

    def catalog_changed(self) -> None:
        self._changed.set()

    def _relay_info(self) -> None:
        try:
            name, reason, version = self._info.get(timeout=120)
        except Exception:
            name, reason, version = "none", "the demo engine did not start within 2 minutes", ""
        self.ready = name != "none"
        self._on_info(name, reason, version)

    def stop(self) -> None:
        """Let the clip in hand finish, then end the child (killed if it does not stop)."""
        self._stop.set()
        self._process.join(STOP_SECONDS)
        if self._process.is_alive():
            log.warning("the demo engine did not stop within %.0f s; terminating it", STOP_SECONDS)
            self._process.terminate()
            self._process.join(5)
