"""Starting and stopping the kiosk: the QApplication, the window, the backend."""

from __future__ import annotations

import gc
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from engine.config import Config

log = logging.getLogger(__name__)


def create_application():
    """The QApplication (created once), set up for a public screen."""
    from PyQt6.QtCore import Qt
    from PyQt6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        QApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(sys.argv[:1])
    app.setApplicationName("Art2Mus")
    app.setApplicationDisplayName("Art2Mus")
    return app


def build_window(backend, config: Config, *, windowed: bool):
    """The kiosk window on ``backend``, with lockdown unless ``windowed``."""
    from PyQt6.QtCore import Qt
    from PyQt6.QtGui import QCursor
    from PyQt6.QtWidgets import QApplication

    from .window import KioskWindow

    app = QApplication.instance()
    window = KioskWindow(backend.services, config, locked=not windowed)
    backend.notify = window.notifier.changed.emit
    app.installEventFilter(window.filter)
    # The catalog rows and widgets live as long as the app: keep them out of the cyclic
    # garbage collector's full passes, which would otherwise pause scrolling now and then.
    gc.collect()
    gc.freeze()
    if not windowed:
        window.setWindowFlags(Qt.WindowType.FramelessWindowHint | Qt.WindowType.WindowStaysOnTopHint)
        if config.kiosk.hide_cursor:
            app.setOverrideCursor(QCursor(Qt.CursorShape.BlankCursor))
    return window


def run_kiosk(
    config: Config,
    *,
    collection: Path | None = None,
    db_path: Path | None = None,
    windowed: bool = False,
    size: tuple[int, int] = (1920, 1080),
    player: Any = None,
    camera: str | None = None,
) -> int:
    """Run the kiosk until the curator exits it (or SIGTERM); returns the exit status.

    With ``collection`` it runs in demo mode (catalog, default engine and player in this
    process); without, it reads the store the engine service fills.
    """
    from PyQt6.QtCore import QTimer

    from .backend import KioskBackend
    from .screen_scale import apply_screen_scale
    from .watchdog import KioskHealth

    # Before Qt starts (it reads its scale factor once). A development window keeps its size.
    if not windowed or config.kiosk.screen_scale > 0:
        apply_screen_scale(config.kiosk.screen_scale)
    app = create_application()
    backend = KioskBackend(
        config, collection=collection, db_path=db_path, demo=collection is not None, player=player
    )
    window = build_window(backend, config, windowed=windowed)
    camera_view = None
    if camera is not None:
        from .camera_view import attach_camera

        camera_view = attach_camera(window, camera, config)
    if windowed or not config.kiosk.fullscreen:
        window.resize(*size)
        window.show()
    else:
        # Kiosk sessions often run without a window manager to honour "full screen":
        # cover the screen ourselves as well.
        window.setGeometry(app.primaryScreen().geometry())
        window.showFullScreen()
    backend.start()
    # systemd: READY=1 now, watchdog pings while the UI and audio live; the beacon for status.
    health = KioskHealth(backend.services, config, backend.db.path).start()

    # systemd stops us with SIGTERM: quit the event loop cleanly (Python handles signals
    # only between bytecodes, so a timer gives it a chance while Qt waits for events).
    def stop(*_):
        window.allow_close = True
        app.quit()

    # A bug in one handler must not end an exhibition: PyQt would abort on an exception that
    # escapes a slot; log it instead and carry on.
    sys.excepthook = lambda kind, value, tb: log.error("unexpected error", exc_info=(kind, value, tb))
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    ticker = QTimer()
    ticker.start(250)
    ticker.timeout.connect(lambda: None)
    log.info("kiosk running (%s mode, database %s)", "demo" if backend.demo else "normal", backend.db.path)
    try:
        return app.exec()
    finally:
        if camera_view is not None:
            camera_view.stop()
        health.stop()
        backend.close()
        destroy_window(app, window)


def destroy_window(app, window) -> None:
    """Delete the window and every widget in it now, while nothing else runs.

    Left to the end of the process, PyQt's exit cleanup (an atexit handler) deletes it while
    walking sip's table of wrapped objects. The Python code that runs as the widgets go (the
    event filter on the application, event handlers) wraps new objects into that table, and
    now and then the walk reads freed memory: a SIGSEGV in sip_api_get_address under
    cleanup_qobject, after a clean shutdown (the kiosk then exits with -11 instead of 0).
    """
    from PyQt6 import sip
    from PyQt6.QtCore import QThreadPool

    app.removeEventFilter(window.filter)
    for pool in window.findChildren(QThreadPool):
        pool.waitForDone(5000)  # no image load or clip preparation still running
    sip.delete(window)
