"""The kiosk's word to systemd and to ``art2mus status``: alive, and how its audio is.

- **systemd watchdog** (``Type=notify``, ``WatchdogSec=`` in systemd/art2mus-kiosk.service):
  pings only while the UI's event loop runs (a QTimer in the GUI thread stamps each tick) and
  the audio callback is being called, or the player says it is recovering (its supervisor
  then owns the recovery and its own give-up). A frozen UI, a callback that stopped while
  the player believes all is well, or a supervisor stuck in a call to a frozen device (it can
  then neither recover nor give up) stops the pings, and systemd restarts the kiosk.
- **beacon** (``engine/beacons.py``): the player's figures (device, underruns, restarts) for
  the health report, which another process reads.

No Qt import at module level: the timer is made in :meth:`KioskHealth.start`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from engine.beacons import BeaconWriter
from engine.config import Config, uses_default_pin
from engine.health import DEFAULT_PIN_WARNING, ServiceName
from engine.sd_notify import Watchdog, notify

log = logging.getLogger(__name__)

# The UI timer ticks this often; missing ticks for UI_STALL_SECONDS means the UI is frozen.
UI_TICK_MS = 500
UI_STALL_SECONDS = 10.0
# No audio callback for this long, with the player saying it is healthy, is a hang.
AUDIO_STALL_SECONDS = 10.0
# The audio supervisor's watch loop comes round every 0.1 s; an open or close of a stream takes
# seconds at most (JACK's client timeout is 5 s). Not turning for this long is a hang.
SUPERVISOR_STALL_SECONDS = 60.0


class KioskHealth:
    """Watchdog pings and the kiosk's beacon for ``services`` (KioskServices) on ``database``."""

    def __init__(self, services: Any, config: Config, database: Path):
        self.services = services
        self.config = config
        self.ui_tick = time.monotonic()
        self.beacon = BeaconWriter(database, ServiceName.KIOSK, extra=self._beacon_extra)
        self.watchdog = Watchdog(self.trouble)
        self._timer: Any = None

    def start(self) -> KioskHealth:
        from PyQt6.QtCore import QTimer

        self._timer = QTimer()
        self._timer.setInterval(UI_TICK_MS)
        self._timer.timeout.connect(self._tick)
        self._timer.start()
        self.beacon.start()
        if uses_default_pin(self.config):
            log.warning(DEFAULT_PIN_WARNING)
        notify("READY=1\nSTATUS=showing the collection")
        self.watchdog.start()
        return self

    def stop(self) -> None:
        notify("STOPPING=1")
        self.watchdog.stop()
        if self._timer is not None:
            self._timer.stop()
        self.beacon.stop()

    def _tick(self) -> None:
        self.ui_tick = time.monotonic()

    def trouble(self) -> str | None:
        """None while the UI and the audio are alive; else what is wrong (no watchdog ping)."""
        ui_idle = time.monotonic() - self.ui_tick
        if ui_idle > UI_STALL_SECONDS:
            return f"the UI event loop has not run for {ui_idle:.0f} s"
        audio = self.services.telemetry()
        stuck = audio.get("seconds_since_supervisor")
        if audio.get("running") and stuck is not None and stuck > SUPERVISOR_STALL_SECONDS:
            # The supervisor decides about recovering only while its loop turns; one stuck in
            # a call to a frozen device would leave the room silent for good.
            return f"the audio supervisor has been stuck for {stuck:.0f} s (a call to the sound device never returned)"
        if not audio.get("running") or not audio.get("healthy"):
            return None  # not started (no player) or recovering: the supervisor decides
        since = audio.get("seconds_since_callback")
        if since is not None and since > AUDIO_STALL_SECONDS:
            return f"no audio callback for {since:.0f} s while the player says it is healthy"
        return None

    def _beacon_extra(self) -> dict[str, Any]:
        t = self.services.telemetry()
        keys = (
            "running",
            "healthy",
            "device",
            "underruns",
            "restarts",
            "last_error",
            "seconds_since_callback",
        )
        audio = {k: t.get(k) for k in keys}
        if "error" in t:
            audio["last_error"] = t["error"]
        return {"audio": audio, "default_pin": uses_default_pin(self.config)}
