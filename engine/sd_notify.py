"""systemd's notify protocol (``Type=notify``, ``WatchdogSec=``), spoken over its socket directly.

systemd passes ``NOTIFY_SOCKET`` (a unix datagram socket; ``@name`` is Linux's abstract
namespace) and, with ``WatchdogSec=``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID``. A message is
``KEY=VALUE`` lines in one datagram: ``READY=1`` when the service is up, ``WATCHDOG=1`` to say
it is alive, ``STOPPING=1`` when it begins to stop, ``STATUS=...`` for ``systemctl status``.
The protocol is that small, so no library is needed (and none is in the lock). Outside systemd
(no ``NOTIFY_SOCKET``) every call is a no-op, so the commands run the same by hand.

:class:`Watchdog` pings only while the process says it is healthy (``alive()``): a hung worker
loop, UI or audio callback stops the pings, and systemd kills and restarts the service.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send ``state`` (e.g. "READY=1") to systemd; False when not run by systemd or it failed."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    watched = os.environ.get("WATCHDOG_PID", "")
    if watched and watched != str(os.getpid()):
        # A child process (engine serve --gpus) that inherited the socket: with
        # NotifyAccess=main systemd would only log a complaint per message.
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("cannot tell systemd %r via %s: %s", state, address, exc)
        return False
    return True


def watchdog_seconds() -> float | None:
    """systemd's watchdog period for this process (``WatchdogSec=``), None when off."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (e.g. our parent)
    return int(usec) / 1e6


class Watchdog:
    """Pings systemd's watchdog at half its period while ``alive()`` returns True.

    When ``alive()`` says False (or raises), the ping is skipped and the reason logged once;
    pings resume when it is True again, so a brief stall shorter than ``WatchdogSec`` passes.
    """

    def __init__(self, alive: Callable[[], str | None], period: float | None = None):
        #: Returns None when healthy, else why not (logged).
        self.alive = alive
        self.period = period if period is not None else watchdog_seconds()
        self.pings = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._trouble: str | None = None

    def start(self) -> bool:
        """Start pinging; False (and nothing started) when systemd set no watchdog."""
        if self.period is None:
            return False
        self._thread = threading.Thread(target=self._run, name="systemd-watchdog", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def check_and_ping(self) -> bool:
        try:
            trouble = self.alive()
        except Exception as exc:  # a broken check must not look healthy
            trouble = f"health check failed: {exc}"
        if trouble is not None:
            if trouble != self._trouble:
                log.error("not pinging the systemd watchdog: %s", trouble)
            self._trouble = trouble
            return False
        if self._trouble is not None:
            log.warning("pinging the systemd watchdog again (was: %s)", self._trouble)
            self._trouble = None
        if notify("WATCHDOG=1"):
            self.pings += 1
        return True

    def _run(self) -> None:
        assert self.period is not None
        interval = max(0.05, self.period / 2)
        while True:
            self.check_and_ping()
            if self._stop.wait(interval):
                return
