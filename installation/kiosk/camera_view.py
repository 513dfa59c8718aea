"""The camera page: a live preview, a capture button, and the capture playing its music.

``art2mus kiosk --camera SOURCE`` adds this page to the window (:func:`attach_camera`) and a
"Camera" button over the gallery. The preview shows the camera's latest frame with the
painting's canvas outlined as the detector finds it (a few times a second, off the UI thread)
and a hint of what to change ("hold still", "too much glare: step to the side"). When the
camera is missing, unplugged or sends only black, the page says so and keeps trying; it
comes back by itself. The capture button takes the best frame of the last few; the result
shows large, straightened, with a caption saying whose music plays and that its own is on the
way, and the music changes at once (``PlaybackController.play_artwork``: the nearest ready
clip, then the capture's own when the engine stores it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from PyQt6.QtCore import QEvent, QObject, QPointF, QRectF, QRunnable, Qt, QThreadPool, QTimer, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QPainter, QPen, QPolygonF
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from engine.capture.burst import assess
from engine.capture.source import CameraState

from . import style
from .camera_capture import CaptureDesk, CaptureOutcome
from .camera_source import CameraFeed, to_qimage

if TYPE_CHECKING:
    from engine.config import Config

    from .playback import NowPlaying, PlaybackController
    from .window import KioskWindow

log = logging.getLogger(__name__)

HINT_INTERVAL_MS = 300  # live detection a few times a second is enough to aim by
READY_HINT = "Ready: the painting is outlined. Touch “Capture”."


class PreviewWidget(QWidget):
    """An image scaled to fit, with an optional outline (in image pixels) drawn over it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.image: QImage | None = None
        self.outline: np.ndarray | None = None
        self.message = ""
        self.setMinimumSize(320, 180)

    def set_image(self, image: QImage | None, outline: np.ndarray | None = None) -> None:
        self.image = image
        self.outline = outline
        self.update()

    def set_outline(self, outline: np.ndarray | None) -> None:
        self.outline = outline
        self.update()

    def set_message(self, text: str) -> None:
        self.message = text
        self.update()

    def _target(self) -> QRectF:
        assert self.image is not None
        w, h = self.image.width(), self.image.height()
        scale = min(self.width() / w, self.height() / h)
        return QRectF((self.width() - w * scale) / 2, (self.height() - h * scale) / 2, w * scale, h * scale)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.fillRect(self.rect(), style.MAT)
        if self.image is not None and not self.image.isNull():
            target = self._target()
            painter.drawImage(target, self.image)
            if self.outline is not None:
                scale = target.width() / self.image.width()
                points = [QPointF(target.x() + x * scale, target.y() + y * scale) for x, y in self.outline]
                # A dark rim under the brass line keeps it visible on a gilt frame too.
                painter.setRenderHint(QPainter.RenderHint.Antialiasing)
                painter.setPen(QPen(style.WALL, 10))
                painter.drawPolygon(QPolygonF(points))
                painter.setPen(QPen(style.ACCENT, 4))
                painter.drawPolygon(QPolygonF(points))
        if self.message:
            painter.setPen(style.TEXT)
            painter.drawText(
                self.rect().adjusted(40, 40, -40, -40),
                Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                self.message,
            )
        painter.end()


class _Done(QObject):
    finished = pyqtSignal(str, object)  # what, result (or the exception)


class _Task(QRunnable):
    def __init__(self, what: str, fn, signals: _Done):
        super().__init__()
        self.what, self.fn, self.signals = what, fn, signals

    def run(self) -> None:
        try:
            result = self.fn()
        except Exception as exc:  # shown to the visitor in words, logged with its traceback
            log.exception("camera %s failed", self.what)
            result = exc
        self.signals.finished.emit(self.what, result)


class CameraPage(QWidget):
    back_requested = pyqtSignal()
    captured = pyqtSignal(object)  # CaptureOutcome of a good shot

    def __init__(
        self,
        theme: style.Theme,
        feed: CameraFeed,
        desk: CaptureDesk,
        playback: PlaybackController,
        parent=None,
    ):
        super().__init__(parent)
        self.theme, self.feed, self.desk, self.playback = theme, feed, desk, playback
        self.outcome: CaptureOutcome | None = None
        self.live = True  # showing the preview (False: a capture's result)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._busy = False  # a capture in hand
        self._hinting = False  # a live detection in hand
        self._done = _Done()
        self._done.finished.connect(self._finished, Qt.ConnectionType.QueuedConnection)  # type: ignore[call-arg]  # PyQt6 stubs omit the connection type

        row = QHBoxLayout(self)
        row.setContentsMargins(theme.page_margin, 64, theme.page_margin, 72)
        row.setSpacing(72)
        self.preview = PreviewWidget()
        row.addWidget(self.preview, 1)
        column = QWidget()
        column.setFixedWidth(theme.px(560))
        text = QVBoxLayout(column)
        text.setContentsMargins(0, 0, 0, 0)
        self.back = self._button("‹  All paintings", quiet=True)
        self.back.clicked.connect(self._back)
        text.addWidget(self.back, 0, Qt.AlignmentFlag.AlignLeft)
        text.addSpacing(48)
        self.title = self._label("title", style.TEXT, "Photograph a painting")
        self.status = self._label("body", style.TEXT_SECONDARY, feed.message)
        self.caption = self._label("caption", style.TEXT, "")
        self.composing = self._label("small", style.ACCENT, "")
        for widget, gap in ((self.title, 24), (self.status, 24), (self.caption, 16), (self.composing, 0)):
            text.addWidget(widget)
            text.addSpacing(gap)
        text.addStretch(1)
        self.capture_button = self._button("◉  Capture", accent=True)
        self.capture_button.clicked.connect(lambda: self.capture())
        self.whole_button = self._button("Capture the whole picture")
        self.whole_button.clicked.connect(lambda: self.capture(whole=True))
        self.again_button = self._button("Take another")
        self.again_button.clicked.connect(self.resume)
        for button in (self.capture_button, self.whole_button, self.again_button):
            text.addWidget(button)
            text.addSpacing(16)
        row.addWidget(column, 0)

        feed.frame_ready.connect(self._frame, Qt.ConnectionType.QueuedConnection)  # type: ignore[call-arg]  # PyQt6 stubs omit the connection type
        feed.state_changed.connect(self._state, Qt.ConnectionType.QueuedConnection)  # type: ignore[call-arg]  # PyQt6 stubs omit the connection type
        playback.now_playing.connect(self._now_playing)
        self.hints = QTimer(self)
        self.hints.setInterval(HINT_INTERVAL_MS)
        self.hints.timeout.connect(self._hint)
        self.hints.start()
        self.resume()

    def _label(self, role: str, colour: QColor, text: str) -> QLabel:
        label = QLabel(text)
        label.setFont(self.theme.font(role))
        label.setWordWrap(True)
        label.setStyleSheet(f"color: {colour.name()};")
        return label

    def _button(self, text: str, *, quiet: bool = False, accent: bool = False) -> QPushButton:
        button = QPushButton(text)
        button.setFont(self.theme.font("button"))
        button.setMinimumHeight(self.theme.touch_min)
        if quiet:
            button.setProperty("quiet", True)
        if accent:
            button.setProperty("accent", True)
        return button

    # -- live preview ----------------------------------------------------------------------
    def resume(self) -> None:
        """Back to the live preview."""
        self.live = True
        self.outcome = None
        self.title.setText("Photograph a painting")
        self.caption.setText("")
        self.composing.setText("")
        self.again_button.hide()
        self.capture_button.show()
        self.whole_button.show()
        self._state(str(self.feed.state), self.feed.message)

    def _frame(self) -> None:
        frame = self.feed.take_latest()
        if frame is None or not self.live or not self.isVisible():
            return
        self.preview.set_image(to_qimage(frame), self.preview.outline)

    def _state(self, state: str, message: str) -> None:
        if not self.live:
            return
        camera_ok = CameraState(state) is CameraState.LIVE
        self.capture_button.setEnabled(camera_ok and not self._busy)
        self.whole_button.setEnabled(camera_ok and not self._busy)
        if camera_ok:
            self.preview.set_message("")
            self.status.setText("Fill the picture with the painting, frame and all, and hold still.")
        else:
            self.preview.set_outline(None)
            self.preview.set_message(_camera_words(CameraState(state), message))
            self.status.setText("The camera view comes back by itself when the camera does.")

    def _hint(self) -> None:
        if not self.live or self._hinting or self._busy or not self.isVisible():
            return
        if self.feed.state is not CameraState.LIVE:
            return
        frames = self.feed.burst()
        if not frames:
            return
        self._hinting = True
        latest = frames[-1]
        self.pool.start(_Task("hint", lambda: assess(latest), self._done))

    # -- capture ---------------------------------------------------------------------------
    def capture(self, *, whole: bool = False) -> bool:
        """Take the best of the last frames (False when the camera has none to give)."""
        frames = self.feed.burst()
        if self._busy or not frames:
            if not frames:
                self.status.setText(_camera_words(self.feed.state, self.feed.message))
            return False
        self._busy = True
        self.capture_button.setEnabled(False)
        self.whole_button.setEnabled(False)
        self.status.setText("Looking at the painting…")
        self.pool.start(_Task("capture", lambda: self.desk.take(frames, whole=whole), self._done))
        return True

    def _finished(self, what: str, result) -> None:
        if what == "warm-up":
            return
        if what == "hint":
            self._hinting = False
            if self.live and not self._busy and not isinstance(result, Exception):
                detection = result.detection
                self.preview.set_outline(
                    detection.corners if detection is not None and not detection.whole_frame else None
                )
                if self.feed.state is CameraState.LIVE:
                    self.status.setText(READY_HINT if result.ok else _capitalised(result.reason) + ".")
            return
        self._busy = False
        if isinstance(result, Exception):
            self.status.setText("That did not work; please try again.")
            self._state(str(self.feed.state), self.feed.message)
            return
        outcome: CaptureOutcome = result
        if not outcome.shot.ok or outcome.artwork_id is None:
            self.status.setText(_capitalised(outcome.shot.reason) + ".")
            self._state(str(self.feed.state), self.feed.message)
            return
        self._show(outcome)
        self.playback.play_artwork(outcome.artwork_id)  # the music changes now
        self.captured.emit(outcome)

    def _show(self, outcome: CaptureOutcome) -> None:
        self.live = False
        self.outcome = outcome
        crop = outcome.crop
        self.preview.set_message("")
        self.preview.set_image(to_qimage(crop) if crop is not None else None, None)
        self.capture_button.hide()
        self.whole_button.hide()
        self.again_button.show()
        if outcome.recognised is not None:
            self.title.setText(outcome.title)
            self.status.setText("Recognised: this painting is in the collection.")
        else:
            self.title.setText("Your photograph")
            self.status.setText("A painting new to us: its own music is being made for it now.")

    def _now_playing(self, info: NowPlaying) -> None:
        if self.live or self.outcome is None or info.artwork_id != self.outcome.artwork_id:
            return
        caption = info.caption.strip()
        self.caption.setText(caption[:1].upper() + caption[1:] if caption else "")
        if info.composing:
            meanwhile = f" Meanwhile, the music of “{info.source_title}”." if info.source_title else ""
            self.composing.setText("◌  Composing this painting's music…" + meanwhile)
        else:
            self.composing.setText("♪  Its own music is playing." if not info.source_title else "")
            if self.outcome.recognised is None and info.own:
                self.status.setText("A painting new to us: this is the music made for it.")

    def _back(self) -> None:
        self.resume()
        self.back_requested.emit()

    def stop(self) -> None:
        self.hints.stop()
        self.feed.stop()
        self.pool.waitForDone(5000)


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _camera_words(state: CameraState, message: str) -> str:
    if state is CameraState.STARTING:
        return "Starting the camera…"
    if state is CameraState.BLACK:
        return "The camera sends only black. Is the lens covered?"
    return f"No picture from the camera.\n{message}"


class _CornerButton(QObject):
    """Keeps the gallery's "Camera" button in the bottom-right corner of the window."""

    def __init__(self, window: QWidget, button: QPushButton, margin: int):
        super().__init__(window)
        self.window, self.button, self.margin = window, button, margin
        window.installEventFilter(self)
        self.place()

    def place(self) -> None:
        self.button.adjustSize()
        size = self.button.sizeHint()
        self.button.move(
            self.window.width() - size.width() - self.margin,
            self.window.height() - size.height() - self.margin,
        )
        self.button.raise_()

    def eventFilter(self, watched, event) -> bool:
        if watched is self.window and event.type() in (QEvent.Type.Resize, QEvent.Type.Show):
            self.place()
        return False


class CameraAttachment:
    """The camera page in a kiosk window, its feed, its purge timer; ``stop()`` on exit."""

    def __init__(self, window: KioskWindow, source: str, config: Config):
        services = window.services
        self.window = window
        self.feed = CameraFeed(source, burst_frames=config.capture.burst_frames, parent=window)
        self.desk = CaptureDesk(services, config.capture, thumbnail_size=config.catalog.thumbnail_size)
        self.page = CameraPage(window.theme, self.feed, self.desk, window.playback)
        window.pages["camera"] = self.page
        window.stack.addWidget(self.page)
        self.page.back_requested.connect(window.show_gallery)
        self.button = QPushButton("◉  Camera", window)
        self.button.setFont(window.theme.font("button"))
        self.button.setMinimumHeight(window.theme.touch_min)
        self.button.setProperty("accent", True)
        self.button.clicked.connect(self.open)
        self._corner = _CornerButton(window, self.button, window.theme.px(40))
        window.page_changed.connect(lambda name: self.button.setVisible(name == "gallery"))
        self.button.setVisible(window.page == "gallery")
        self.purge_timer = QTimer(window)
        self.purge_timer.setInterval(int(config.capture.purge_minutes * 60_000))
        self.purge_timer.timeout.connect(self._purge)
        self.purge_timer.start()
        self.page.pool.start(_Task("warm-up", self.desk.warm_up, self.page._done))
        self.feed.start()

    def open(self) -> None:
        self.page.resume()
        self.window._switch("camera")

    def _purge(self) -> None:
        try:
            self.desk.purge()
        except Exception:
            log.exception("purging camera captures")

    def stop(self) -> None:
        self.purge_timer.stop()
        self.page.stop()
        if self.desk.config.keep_hours <= 0:
            self._purge_all()

    def _purge_all(self) -> None:
        try:
            self.desk.purge(all_of_them=True)  # "until the kiosk restarts": gone when it stops
        except Exception:
            log.exception("purging camera captures")


def attach_camera(window: KioskWindow, source: str, config: Config) -> CameraAttachment:
    """Add the camera page and its button to a kiosk window."""
    return CameraAttachment(window, source, config)
