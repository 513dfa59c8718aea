"""Following a collection folder while curators work in it (watchdog).

File-system events only say *where* something happened. Each path waits in ``pending`` until
it has stopped changing: a file being copied in keeps growing, so it is read only after its
size and mtime have stayed the same for ``catalog.settle_seconds``. A rename or a deletion is
complete when its event arrives, so those wait only a short debounce (which also lets the two
halves of a move, and a burst of events, go into one scan). Ready paths are then synced with a
scoped :func:`scan_collection`; a file that still changed while it was read is put back to
wait, never marked invalid. A full re-scan runs at start and every ``catalog.rescan_seconds``
as a safety net for events the operating system dropped.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from engine.config import CatalogConfig
from engine.store import Database
from engine.store.faults import RepeatFilter, classify, one_line

from .images import SUFFIX_FORMATS
from .metadata import CATALOG_CSV, CATALOG_JSON
from .scanner import ScanError, ScanSummary, scan_collection
from .walk import UNSUPPORTED_SUFFIXES

log = logging.getLogger(__name__)

# Deletions and renames are complete when reported; wait this long to gather related events.
DEBOUNCE_SECONDS = 0.2
TICK_SECONDS = 0.05
# How often the watcher checks that the collection folder is still the one it watches.
ROOT_CHECK_SECONDS = 2.0
# The stat-polling interval when the folder is polled (network shares, or inotify exhausted).
POLL_SECONDS = 1.0
# What the kernel says when inotify's limits are reached (watchdog raises them as OSError):
# ENOSPC for fs.inotify.max_user_watches, EMFILE for fs.inotify.max_user_instances.
INOTIFY_LIMITS = (errno.ENOSPC, errno.EMFILE)


@dataclass
class _Pending:
    signature: object  # what the path looked like when last checked
    changed_at: float  # monotonic time it last changed
    settle: float  # how long it must stay the same


def _signature(path: str) -> object:
    """(size, mtime) of a file; for a folder, a digest of its files'; None if it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not os.path.isdir(path):
        return (st.st_size, st.st_mtime_ns)
    count = total = latest = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                fst = os.stat(os.path.join(dirpath, name))
            except OSError:
                continue
            count, total, latest = count + 1, total + fst.st_size, max(latest, fst.st_mtime_ns)
    return ("dir", count, total, latest)


class CatalogWatcher:
    """Keeps the catalog in step with ``folder`` until :meth:`stop`.

    ``on_change(summary)`` is called from the watcher's thread after each sync that changed
    something. ``polling=True`` uses stat polling instead of inotify (network shares).
    """

    def __init__(
        self,
        db: Database,
        folder: str | os.PathLike,
        config: CatalogConfig,
        on_change: Callable[[ScanSummary], None] | None = None,
        *,
        initial_scan: bool = True,
        polling: bool = False,
    ):
        self.db = db
        self.root = os.path.abspath(os.fspath(folder))
        self.config = config
        self.on_change = on_change
        self.initial_scan = initial_scan
        self.last_summary: ScanSummary | None = None
        self.last_error: str | None = None
        self._pending: dict[str, _Pending] = {}
        self._full_scan = initial_scan
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.polling = polling
        self._observer: BaseObserver | None = None  # made in start(): inotify's limits bite there
        self._last_full = time.monotonic()
        self._root_id: tuple[int, int] | None = None
        self._root_checked = 0.0
        self._root_lost = False  # the system said the watched folder itself went away
        self._repeats = RepeatFilter(60.0)

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        if not os.path.isdir(self.root):
            raise ScanError(f"{self.root}: the collection folder does not exist or is not a folder")
        # Watch first, then scan: nothing that happens during the first scan is lost.
        self._root_id = _identity(self.root)
        try:
            self._start_observer()
        except OSError as exc:
            if self.polling or exc.errno not in INOTIFY_LIMITS:
                raise
            # A large collection (one watch per folder) or many watching programs exhaust the
            # kernel's inotify limits: follow the folder by polling rather than not at all.
            log.warning(
                "%s: cannot watch the collection folder for changes (%s); polling it every %g s "
                "instead. To watch it, raise the limit: sysctl fs.inotify.max_user_watches / "
                "fs.inotify.max_user_instances",
                self.root,
                one_line(exc),
                POLL_SECONDS,
            )
            self.polling = True
            self._start_observer()
        self._thread = threading.Thread(target=self._run, name="catalog-watcher", daemon=True)
        self._thread.start()

    def _start_observer(self) -> None:
        # watchdog's inotify observer takes an inotify instance when made (EMFILE at the
        # instance limit) and a watch per folder when scheduled and started (ENOSPC).
        observer = PollingObserver(timeout=POLL_SECONDS) if self.polling else Observer()
        try:
            observer.schedule(_Handler(self), self.root, recursive=True)
            observer.start()
        except BaseException:
            observer.stop()
            raise
        self._observer = observer

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> CatalogWatcher:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def request_full_scan(self) -> None:
        with self._lock:
            self._full_scan = True
        self._wake.set()

    # --- events (watchdog's thread) -----------------------------------------------------

    def _note(self, abspath: str, settle: float) -> None:
        rel = os.path.relpath(abspath, self.root)
        if rel == "." or rel.startswith(".."):
            if rel == ".":
                self.request_full_scan()
            return
        rel = rel.replace(os.sep, "/")
        if any(part.startswith(".") for part in rel.split("/")):
            return  # hidden files: partial copies of rsync and friends
        if rel in (CATALOG_CSV, CATALOG_JSON):
            self.request_full_scan()
            return
        with self._lock:
            self._pending[rel] = _Pending(object(), time.monotonic(), settle)
        self._wake.set()

    # --- the watcher's thread -----------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(TICK_SECONDS)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self._step()
            except Exception as exc:  # keep watching whatever happens; say so in the log
                self.last_error = str(exc)
                self._report(exc)
                self._stop.wait(1.0)

    def _report(self, exc: Exception) -> None:
        """A machine fault (disk full, database busy or damaged) in one line, once a minute;
        anything else with its traceback (a bug), also at most once a minute."""
        allowed, held = self._repeats.allow(f"{type(exc).__name__}:{exc}")
        if not allowed:
            return
        more = f" ({held} more since the last report)" if held else ""
        fault = classify(exc)
        if fault is not None:
            log.warning(
                "%s: catalog sync paused (%s: %s); will retry%s", self.root, fault, one_line(exc), more
            )
        else:
            log.exception("%s: catalog sync failed; will retry%s", self.root, more)

    def _step(self) -> None:
        now = time.monotonic()
        if now - self._root_checked >= ROOT_CHECK_SECONDS:
            self._root_checked = now
            self._check_root()
        rescan = self.config.rescan_seconds
        with self._lock:
            full = self._full_scan or (rescan > 0 and now - self._last_full >= rescan)
            self._full_scan = False
        if full:
            self._sync(None)
            self._last_full = time.monotonic()
            return
        ready = self._settled(now)
        if ready:
            self._sync(ready)

    def _check_root(self) -> None:
        """Re-watch a collection folder that was replaced (a drive or share mounted again).

        The system watches a folder, not its name: after the folder is deleted and made
        again, or a drive is unmounted and mounted, no event would ever come again.
        """
        current = _identity(self.root)
        if current == self._root_id and not (self._root_lost and current is not None):
            return
        self._root_lost = False
        self._root_id = current
        if current is None:
            log.warning("%s: the collection folder is gone; waiting for it to return", self.root)
            return
        log.warning("%s: the collection folder is back (or was replaced); watching it again", self.root)
        try:
            assert self._observer is not None  # made in start()
            self._observer.unschedule_all()
            self._observer.schedule(_Handler(self), self.root, recursive=True)
        except OSError as exc:
            log.warning("%s: cannot watch the folder again yet: %s", self.root, exc)
            self._root_id = None  # try again at the next check
            return
        self.request_full_scan()

    def _settled(self, now: float) -> list[str]:
        """Pending paths that have not changed for their settle time (removed from pending)."""
        with self._lock:
            items = list(self._pending.items())
        ready = []
        for rel, p in items:
            sig = _signature(os.path.join(self.root, rel))
            with self._lock:
                current = self._pending.get(rel)
                if current is not p:
                    continue  # a new event came in meanwhile
                if sig != p.signature:
                    p.signature, p.changed_at = sig, now
                    continue
                if now - p.changed_at >= p.settle:
                    del self._pending[rel]
                    ready.append(rel)
        return ready

    def _sync(self, paths: list[str] | None) -> None:
        try:
            summary = scan_collection(self.db, self.root, self.config, paths=_scope(self.root, paths))
        except ScanError as exc:
            self.last_error = str(exc)
            log.warning("%s", exc)
            return
        self.last_summary, self.last_error = summary, None
        with self._lock:
            for rel in summary.growing:  # still being written: wait for it again
                self._pending[rel] = _Pending(object(), time.monotonic(), self.config.settle_seconds)
        for path, reason in summary.new_problems:  # said once; the curator panel lists them all
            log.warning("%s: %s", path, reason)
        if summary.changed and self.on_change is not None:
            self.on_change(summary)


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _scope(root: str, paths: list[str] | None) -> list[str] | None:
    """Paths to scan for the changed ``paths``: a sidecar's change rescans its image(s)."""
    if paths is None:
        return None
    scope = set()
    for rel in paths:
        if not rel.lower().endswith(".json"):
            scope.add(rel)
            continue
        base = rel[: -len(".json")]
        if os.path.splitext(base)[1].lower() in SUFFIX_FORMATS:
            scope.add(base)  # photo.jpg.json
            continue
        folder, stem = os.path.split(base)  # photo.json: any photo.<image suffix>
        try:
            names = os.listdir(os.path.join(root, folder) if folder else root)
        except OSError:
            continue
        for name in names:
            name_stem, suffix = os.path.splitext(name)
            if name_stem == stem and suffix.lower() in SUFFIX_FORMATS:
                scope.add(f"{folder}/{name}" if folder else name)
    return sorted(scope)


def _relevant(path: str) -> bool:
    suffix = os.path.splitext(path)[1].lower()
    return suffix in SUFFIX_FORMATS or suffix in UNSUPPORTED_SUFFIXES or suffix in (".json", ".csv")


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: CatalogWatcher):
        self.w = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return  # reads (our own included) change nothing
        if event.is_directory and event.event_type == "modified":
            return  # a folder's entries changed: each change has its own event
        settle = self.w.config.settle_seconds
        src = os.fsdecode(event.src_path)
        if event.event_type in ("deleted", "moved") and os.path.abspath(src) == self.w.root:
            self.w._root_lost = True  # its watch is gone with it; see _check_root
            return
        if event.event_type == "moved":
            # A rename is complete at once; both ends go into one scan (kept as a rename).
            dest = os.fsdecode(event.dest_path)
            debounce = min(DEBOUNCE_SECONDS, settle)
            if event.is_directory or _relevant(src):
                self.w._note(src, debounce)
            if event.is_directory or _relevant(dest):
                self.w._note(dest, debounce)
            return
        if not event.is_directory and not _relevant(src):
            return
        if event.event_type == "deleted":
            self.w._note(src, min(DEBOUNCE_SECONDS, settle))
        else:  # created, modified, closed: a copier may write on, so the file must settle
            self.w._note(src, settle)
