"""The camera, for Qt: frames and the camera's state as signals, on the UI thread.

``engine.capture.source.CameraReader`` reads the camera in its own thread and reopens it when
it is lost. Here each frame is kept as the *latest* one (a copy the reader no longer touches)
and announced with a queued signal; while the UI has not taken the last one, no new signal is
sent, so a slow screen never builds up a queue of stale frames. The last few frames are kept
for a burst: pressing the capture button looks at the frames around that moment.
"""

from __future__ import annotations

import collections
import threading

import numpy as np
from PyQt6.QtCore import QObject, Qt, pyqtSignal
from PyQt6.QtGui import QImage

from engine.capture.source import CameraReader, CameraState, SourceSpec

from .images import rgb_to_qimage


def to_qimage(frame: np.ndarray) -> QImage:
    """A BGR frame as a QImage that owns its pixels (a deep copy)."""
    return rgb_to_qimage(frame[..., ::-1])


class CameraFeed(QObject):
    """One camera source: ``frame_ready`` (latest frame waiting), ``state_changed``."""

    frame_ready = pyqtSignal()
    state_changed = pyqtSignal(str, str)  # CameraState value, message

    def __init__(self, source: str, *, burst_frames: int = 6, retry_seconds: float = 2.0, parent=None):
        super().__init__(parent)
        self.spec = SourceSpec.parse(source)
        self._lock = threading.Lock()
        self._latest: np.ndarray | None = None
        self._waiting = False
        self._recent: collections.deque[np.ndarray] = collections.deque(maxlen=max(1, burst_frames))
        self.state = CameraState.STARTING
        self.message = f"starting {self.spec.describe()}…"
        self._reader = CameraReader(self.spec, self._on_frame, self._on_state, retry_seconds=retry_seconds)
        self.state_changed.connect(
            self._remember,
            Qt.ConnectionType.QueuedConnection,  # type: ignore[call-arg]  # PyQt6 stubs omit the connection type
        )

    def start(self) -> CameraFeed:
        self._reader.start()
        return self

    def stop(self) -> None:
        self._reader.stop()

    # -- reader thread ---------------------------------------------------------------------
    def _on_frame(self, frame: np.ndarray) -> None:
        with self._lock:
            self._latest = frame
            self._recent.append(frame)
            if self._waiting:
                return
            self._waiting = True
        self.frame_ready.emit()

    def _on_state(self, state: CameraState, message: str) -> None:
        if state is not CameraState.LIVE:
            with self._lock:
                self._recent.clear()  # a burst never mixes frames from before a loss
        self.state_changed.emit(str(state), message)

    # -- UI thread -------------------------------------------------------------------------
    def _remember(self, state: str, message: str) -> None:
        self.state, self.message = CameraState(state), message

    def take_latest(self) -> np.ndarray | None:
        """The newest frame (the UI's to keep), and let the reader announce the next one."""
        with self._lock:
            self._waiting = False
            return self._latest

    def burst(self) -> list[np.ndarray]:
        """The last few frames, oldest first (empty while the camera is lost)."""
        with self._lock:
            return list(self._recent)

    @property
    def frames(self) -> int:
        return self._reader.frames

    @property
    def reopened(self) -> int:
        return self._reader.reopened
