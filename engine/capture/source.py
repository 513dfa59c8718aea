"""Where frames come from: a camera, a stream, a video file or a still image.

``SOURCE`` as the command line and the configuration give it:

- a number (``0``): a camera by index; ``/dev/video2``: a camera by device path;
- ``rtsp://…``, ``http(s)://…``: a network camera's stream;
- an image file (JPEG, PNG, …): a still photograph, the same frame every time;
- any other file: a video, played at its own pace (a camera whose stream ends with the file).

:class:`FrameSource` reads one source synchronously (``art2mus capture``). :class:`CameraReader`
runs one in a thread for a live preview and never gives up: a camera that is missing, busy,
unplugged, or sends only black is reported through ``on_state`` in words a person can act on,
and opened again every ``retry_seconds`` until it answers. Frames are handed on as copies,
so the reader's buffer is never shared with the consumer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np

from .detect import Frame
from .quality import is_black

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"})
# A video file plays at its own rate, but never faster than this (a camera rarely does more).
MAX_FILE_FPS = 30.0
# A still image is offered again this often (a preview needs no more).
STILL_FPS = 10.0
# Failed reads in a row before a camera counts as lost (a USB camera drops a frame now and then).
LOST_AFTER_FAILURES = 5
# Black frames in a row before the camera is said to send only black (they wake up dark).
BLACK_AFTER_FRAMES = 15


class SourceKind(StrEnum):
    INDEX = "index"
    DEVICE = "device"
    URL = "url"
    VIDEO = "video"
    IMAGE = "image"


class SourceError(RuntimeError):
    """A source that cannot be opened or read; the message names it and says what to check."""


@dataclass(frozen=True)
class SourceSpec:
    kind: SourceKind
    text: str

    @classmethod
    def parse(cls, text: str) -> SourceSpec:
        text = text.strip()
        if not text:
            raise SourceError("no camera source given (a number, /dev/videoN, a URL or a file)")
        if text.isdigit():
            return cls(SourceKind.INDEX, text)
        if "://" in text:
            return cls(SourceKind.URL, text)
        if text.startswith("/dev/"):
            return cls(SourceKind.DEVICE, text)
        if Path(text).suffix.lower() in IMAGE_SUFFIXES:
            return cls(SourceKind.IMAGE, text)
        return cls(SourceKind.VIDEO, text)

    @property
    def is_file(self) -> bool:
        return self.kind in (SourceKind.IMAGE, SourceKind.VIDEO)

    def describe(self) -> str:
        if self.kind is SourceKind.INDEX:
            return f"camera {self.text}"
        if self.kind is SourceKind.DEVICE:
            return f"camera {self.text}"
        if self.kind is SourceKind.URL:
            return f"camera stream {self.text}"
        return str(self.text)


class FrameSource:
    """One source, opened now; ``read()`` gives the next frame or None when it has none."""

    def __init__(self, spec: SourceSpec | str):
        self.spec = spec if isinstance(spec, SourceSpec) else SourceSpec.parse(spec)
        self._still: Frame | None = None
        self._capture: cv2.VideoCapture | None = None
        self.fps = MAX_FILE_FPS
        self._open()

    def _open(self) -> None:
        spec = self.spec
        if spec.is_file and not Path(spec.text).exists():
            raise SourceError(f"{spec.text}: the file does not exist")
        if spec.kind is SourceKind.IMAGE:
            image = cv2.imread(spec.text, cv2.IMREAD_COLOR)
            if image is None:
                raise SourceError(f"{spec.text}: not an image OpenCV can read")
            self._still = image
            self.fps = STILL_FPS
            return
        target: int | str = int(spec.text) if spec.kind is SourceKind.INDEX else spec.text
        capture = cv2.VideoCapture(target)
        if not capture.isOpened():
            capture.release()
            if spec.kind is SourceKind.VIDEO:
                raise SourceError(f"{spec.text}: not a video OpenCV can read")
            raise SourceError(
                f"{spec.describe()} cannot be opened: not connected, busy in another program, "
                "or no permission (is the user in the 'video' group?)"
            )
        fps = capture.get(cv2.CAP_PROP_FPS)
        if spec.kind is SourceKind.VIDEO and fps and np.isfinite(fps) and fps > 0:
            self.fps = min(MAX_FILE_FPS, float(fps))
        self._capture = capture

    def read(self) -> Frame | None:
        if self._still is not None:
            return self._still.copy()
        if self._capture is None:
            return None
        ok, frame = self._capture.read()
        if not ok or frame is None or frame.size == 0:
            return None
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        return np.ascontiguousarray(frame[..., :3])

    def burst(self, count: int) -> list[Frame]:
        """Up to ``count`` frames (one for a still image)."""
        if self._still is not None:
            return [self._still.copy()]
        frames = []
        for _ in range(count):
            frame = self.read()
            if frame is None:
                break
            frames.append(frame)
        return frames

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CameraState(StrEnum):
    STARTING = "starting"
    LIVE = "live"
    BLACK = "black"  # frames arrive, but black
    LOST = "lost"  # cannot be opened, or stopped delivering; retrying


class CameraReader:
    """A source read in a background thread, reopened whenever it fails.

    ``on_frame(frame)`` receives each frame (a copy the callee may keep); ``on_state(state,
    message)`` each change of state. Both are called from the reader's thread.
    """

    def __init__(
        self,
        spec: SourceSpec | str,
        on_frame: Callable[[Frame], None],
        on_state: Callable[[CameraState, str], None],
        *,
        retry_seconds: float = 2.0,
        opener: Callable[[SourceSpec], FrameSource] = FrameSource,
    ):
        self.spec = spec if isinstance(spec, SourceSpec) else SourceSpec.parse(spec)
        self.on_frame = on_frame
        self.on_state = on_state
        self.retry_seconds = retry_seconds
        self._opener = opener
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = CameraState.STARTING
        self.message = ""
        self.frames = 0  # frames delivered
        self.reopened = 0  # times the source was opened again after it was lost

    def start(self) -> CameraReader:
        self._thread = threading.Thread(target=self._run, name="camera-reader", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _set(self, state: CameraState, message: str) -> None:
        if state is not self.state or message != self.message:
            self.state, self.message = state, message
            log.info("camera: %s", message)
            self.on_state(state, message)

    def _run(self) -> None:
        opened_before = False
        while not self._stop.is_set():
            try:
                source = self._opener(self.spec)
            except SourceError as exc:
                self._set(CameraState.LOST, f"{exc}; trying again every {self.retry_seconds:g} s")
                self._stop.wait(self.retry_seconds)
                continue
            if opened_before:
                self.reopened += 1
            opened_before = True
            try:
                self._pump(source)
            finally:
                source.close()
            if not self._stop.is_set():
                self._stop.wait(min(self.retry_seconds, 0.5))

    def _pump(self, source: FrameSource) -> None:
        """Read until the source fails or the reader stops."""
        failures = blacks = 0
        pace = 1.0 / source.fps if source.spec.is_file else 0.0
        next_at = time.monotonic()
        while not self._stop.is_set():
            frame = source.read()
            if frame is None:
                failures += 1
                if failures >= LOST_AFTER_FAILURES or source.spec.is_file:
                    self._set(
                        CameraState.LOST,
                        f"{source.spec.describe()} stopped sending pictures (unplugged or ended); "
                        f"trying again every {self.retry_seconds:g} s",
                    )
                    return
                self._stop.wait(0.05)
                continue
            failures = 0
            if is_black(frame):
                blacks += 1
                if blacks >= BLACK_AFTER_FRAMES:
                    self._set(CameraState.BLACK, CAMERA_BLACK_MESSAGE)
            else:
                blacks = 0
                self._set(CameraState.LIVE, f"{source.spec.describe()}: live")
            self.frames += 1
            self.on_frame(frame)
            if pace:
                next_at = max(next_at + pace, time.monotonic() - pace)
                self._stop.wait(max(0.0, next_at - time.monotonic()))


CAMERA_BLACK_MESSAGE = "the camera sends only black: is the lens covered?"
