"""The kiosk's size on screens larger than the 1920×1080 it is laid out for.

Every size of the kiosk is set in Qt's device-independent pixels for a 1920×1080 screen. On a
3840×2160 screen the same pixels are half as large from the same distance: text meant to be
read from two metres needs reading glasses. Qt scales the whole interface by
``QT_SCALE_FACTOR``, but reads it only once, when it starts; so before the kiosk starts Qt it
asks a short-lived child process (Qt itself, on the same display) how large the screen is and
sets the factor: the screen's size over 1920×1080 (the smaller of the two ratios), in quarter
steps, never below 1. A factor already in the environment (an installer's choice, or a
desktop that scales) is left as it is; ``kiosk.screen_scale`` sets a factor by hand (1: none).
"""

from __future__ import annotations

import logging
import math
import os
import subprocess
import sys

log = logging.getLogger(__name__)

DESIGN_SIZE = (1920, 1080)
STEP = 0.25
MAX_SCALE = 4.0
PROBE_TIMEOUT_S = 20.0
# The child: Qt on the same display, printing the primary screen's size in device pixels.
PROBE = (
    "import sys\n"
    "from PyQt6.QtGui import QGuiApplication\n"
    "app = QGuiApplication(sys.argv[:1])\n"
    "screen = app.primaryScreen()\n"
    "size = screen.geometry().size() * screen.devicePixelRatio()\n"
    "print(size.width(), size.height())\n"
)


def scale_for(width: int, height: int) -> float:
    """The factor that shows a 1920×1080 layout at the same proportions on this screen."""
    ratio = min(width / DESIGN_SIZE[0], height / DESIGN_SIZE[1])
    return min(MAX_SCALE, max(1.0, math.floor(ratio / STEP + 1e-9) * STEP))


def screen_size() -> tuple[int, int] | None:
    """The primary screen's size in device pixels, as Qt sees it (None if it cannot tell)."""
    env = {k: v for k, v in os.environ.items() if k != "QT_SCALE_FACTOR"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("cannot measure the screen (%s): the kiosk keeps its 1920x1080 sizes", exc)
        return None
    words = done.stdout.split()
    if done.returncode != 0 or len(words) < 2 or not all(w.isdigit() for w in words[-2:]):
        log.warning(
            "cannot measure the screen (exit %s: %s): the kiosk keeps its 1920x1080 sizes",
            done.returncode,
            done.stderr.strip().splitlines()[-1:] or "no answer",
        )
        return None
    return int(words[-2]), int(words[-1])


def apply_screen_scale(setting: float) -> float | None:
    """Set ``QT_SCALE_FACTOR`` for this process before Qt starts: ``setting`` when it is a
    factor, the screen's own when it is 0 (auto). Returns the factor set, or None when the
    environment already had one (or the screen could not be measured)."""
    if os.environ.get("QT_SCALE_FACTOR"):
        log.info("QT_SCALE_FACTOR=%s set outside the kiosk: kept", os.environ["QT_SCALE_FACTOR"])
        return None
    if setting > 0:
        factor = setting
    else:
        size = screen_size()
        if size is None:
            return None
        factor = scale_for(*size)
        log.info("screen %dx%d: the kiosk scales its 1920x1080 layout by %g", size[0], size[1], factor)
    if factor != 1.0:
        os.environ["QT_SCALE_FACTOR"] = f"{factor:g}"
    return factor
