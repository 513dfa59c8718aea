"""Which services run on a database, and how they are: one small JSON file per process.

Each long-running process (the engine service, the kiosk) rewrites its *beacon*,
``DATABASE.services/SERVICE-HOST-PID.json``, every few seconds: when it started, when it last
wrote, and what only it knows (the kiosk's audio: underruns, restarts, device). ``art2mus
status`` and ``/health`` read them all, so they can say what runs on this database, notice two
engine services on one database, and report the kiosk's audio from another process.

Why files and not a table: a row rewritten every few seconds would change SQLite's
``data_version``, which the kiosk polls to notice catalog changes (it would re-read the catalog
each time), and a damaged database must not silence the report of what is wrong with it.
Files are written atomically (temporary file, then rename) and read without locks.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# A beacon not rewritten for this many intervals belongs to a hung or ended process.
STALE_INTERVALS = 3
# Beacons of ended processes older than this are not listed any more.
FORGET_SECONDS = 24 * 3600


def beacon_folder(database: Path) -> Path:
    return database.with_name(database.name + ".services")


@dataclass
class Beacon:
    """What one process said about itself in its beacon file."""

    service: str
    host: str
    pid: int
    started_at: float  # time.time()
    updated_at: float
    interval: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        if time.time() - self.updated_at > STALE_INTERVALS * self.interval:
            return False
        return self.host != socket.gethostname() or _pid_alive(self.pid)

    def as_json(self) -> dict[str, Any]:
        now = time.time()
        return {
            "service": self.service,
            "host": self.host,
            "pid": self.pid,
            "alive": self.alive,
            "started_at": _iso(self.started_at),
            "updated_at": _iso(self.updated_at),
            "uptime_s": round(now - self.started_at, 1) if self.alive else None,
        }


def read_beacons(database: Path) -> list[Beacon]:
    """Every recent beacon of ``database``'s services, alive first, then newest first."""
    folder = beacon_folder(database)
    found: list[Beacon] = []
    try:
        paths = sorted(folder.glob("*.json"))
    except OSError:
        return []
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            beacon = Beacon(
                service=str(data["service"]),
                host=str(data["host"]),
                pid=int(data["pid"]),
                started_at=float(data["started_at"]),
                updated_at=float(data["updated_at"]),
                interval=float(data["interval"]),
                extra=dict(data.get("extra") or {}),
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being replaced, or not ours: the next read sees it whole
        if time.time() - beacon.updated_at < FORGET_SECONDS:
            found.append(beacon)
    found.sort(key=lambda b: (not b.alive, -b.updated_at))
    return found


class BeaconWriter:
    """Rewrites this process's beacon every ``interval`` seconds until :meth:`stop`."""

    def __init__(
        self,
        database: Path,
        service: str,
        *,
        extra: Callable[[], dict[str, Any]] | None = None,
        interval: float = 5.0,
    ):
        self.folder = beacon_folder(database)
        self.service = service
        self.extra = extra
        self.interval = interval
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started_at = time.time()
        self.path = self.folder / f"{service}-{self.host}-{self.pid}.json"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed = False

    def start(self) -> None:
        self._make_folder()
        self._forget_ended()
        self.write()
        self._thread = threading.Thread(target=self._run, name=f"beacon-{self.service}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass

    def __enter__(self) -> BeaconWriter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write(self) -> None:
        try:
            extra = self.extra() if self.extra is not None else {}
        except Exception as exc:
            extra = {"error": f"cannot gather: {exc}"}
        record = {
            "service": self.service,
            "host": self.host,
            "pid": self.pid,
            "started_at": self.started_at,
            "updated_at": time.time(),
            "interval": self.interval,
            "extra": extra,
        }
        try:
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".beacon-", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(record, fh, default=str)
            os.chmod(tmp, 0o644)  # readable by the other service's user
            os.replace(tmp, self.path)
        except OSError as exc:
            if not self._failed:  # once: a status report is not worth a log flood
                log.warning("cannot write the service beacon %s: %s", self.path, exc.strerror or exc)
            self._failed = True
            return
        if self._failed:
            log.info("service beacon %s written again", self.path)
        self._failed = False

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.write()

    def _make_folder(self) -> None:
        if self.folder.is_dir():
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            # As open as the database's folder (which both services' users must write), plus
            # the sticky bit: each process may replace only its own files.
            mode = self.folder.parent.stat().st_mode & 0o777
            os.chmod(self.folder, mode | 0o1000)
        except OSError as exc:
            log.warning("cannot create %s: %s", self.folder, exc.strerror or exc)

    def _forget_ended(self) -> None:
        """Remove beacons of this service's ended processes on this host (killed with -9)."""
        for path in self.folder.glob(f"{self.service}-{self.host}-*.json"):
            pid_text = path.stem.rsplit("-", 1)[-1]
            if pid_text.isdigit() and int(pid_text) != self.pid and not _pid_alive(int(pid_text)):
                try:
                    path.unlink()
                except OSError:
                    pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
