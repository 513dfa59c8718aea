"""Gallery thumbnails, read and decoded off the UI thread, kept in a bounded cache.

The delegate asks :meth:`ThumbnailCache.get` while painting. A hit returns a ready
``QImage`` already scaled to the card; a miss schedules one job on a small thread pool that
reads the stored JPEG bytes from the store and decodes them with ``QImageReader`` at the
target size (JPEG decoders scale while decoding, which is several times faster than decoding
at full size and scaling afterwards). When the image is ready, :attr:`ready` fires with the
artwork id and the view repaints that card. Scrolling past cards only queues work for the
ones still visible: jobs whose card has scrolled away are dropped before they start.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable

from PyQt6.QtCore import (
    QBuffer,
    QByteArray,
    QObject,
    QRunnable,
    QSize,
    Qt,
    QThread,
    QThreadPool,
    pyqtSignal,
)
from PyQt6.QtGui import QImage, QImageReader

log = logging.getLogger(__name__)


def decode_thumbnail(data: bytes, size: QSize, scale: float = 1.0) -> QImage:
    """JPEG/PNG bytes -> an RGB32 QImage fitting inside ``size`` (aspect kept), in device
    pixels for a screen of device pixel ratio ``scale`` (the image carries that ratio, so it
    is drawn at ``size`` and as sharp as the screen allows)."""
    buffer = QBuffer()
    buffer.setData(QByteArray(data))
    buffer.open(QBuffer.OpenModeFlag.ReadOnly)
    reader = QImageReader(buffer)
    device = QSize(round(size.width() * scale), round(size.height() * scale))
    original = reader.size()
    if original.isValid():
        reader.setScaledSize(original.scaled(device, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    if image.isNull():
        return image
    if image.width() > device.width() or image.height() > device.height():
        image = image.scaled(
            device, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
    # Opaque RGB32 is what the window's backing store holds: drawing it is a plain copy.
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    image.setDevicePixelRatio(scale)
    return image


_niced = threading.local()


def _lower_thread_priority() -> None:
    """Give this decoder thread a nice value of 10 (Linux: niceness is per thread).

    The visitor's scrolling runs on the UI thread and must win every contest for a CPU;
    Qt's thread priorities do not change anything for normal threads on Linux.
    """
    if getattr(_niced, "done", False):
        return
    _niced.done = True
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        pass


class _Signals(QObject):
    # Emitted from pool threads; Qt queues it to the cache's (UI) thread.
    decoded = pyqtSignal(int, QImage, bool)  # artwork id, image, skipped


class _DecodeJob(QRunnable):
    def __init__(self, cache: ThumbnailCache, artwork_id: int, generation: int):
        super().__init__()
        self.cache = cache
        self.artwork_id = artwork_id
        self.generation = generation
        self.setAutoDelete(True)

    def run(self) -> None:
        _lower_thread_priority()
        cache = self.cache
        if cache.closed:
            return
        if not cache._still_wanted(self.artwork_id, self.generation):
            cache._signals.decoded.emit(self.artwork_id, QImage(), True)  # scrolled away
            return
        try:
            data = cache._fetch(self.artwork_id)
            image = decode_thumbnail(data, cache.size, cache.scale) if data else QImage()
        except Exception:  # a bad thumbnail must not take the pool thread down
            log.exception("thumbnail for artwork %s could not be decoded", self.artwork_id)
            image = QImage()
        if not cache.closed:
            cache._signals.decoded.emit(self.artwork_id, image, False)


class ThumbnailCache(QObject):
    """Decoded thumbnails by artwork id, least recently used dropped beyond ``max_bytes``."""

    ready = pyqtSignal(int)

    def __init__(
        self,
        fetch: Callable[[int], bytes | None],
        size: QSize,
        *,
        scale: float = 1.0,
        max_bytes: int = 160 * 1024 * 1024,
        threads: int = 2,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self._fetch = fetch
        self.size = size  # device-independent pixels
        self.scale = scale  # the screen's device pixel ratio: thumbnails are decoded at size x scale
        self.max_bytes = max_bytes
        self._images: OrderedDict[int, QImage] = OrderedDict()
        self._bytes = 0
        self._missing: set[int] = set()  # artworks with no thumbnail: do not ask again
        self._pending: set[int] = set()
        self._wanted: dict[int, int] = {}  # artwork id -> generation when last asked for
        self._generation = 0
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(threads)
        # A visitor's scrolling comes first: decoders yield the CPU to the UI thread
        # (see _lower_thread_priority for Linux, where Qt's priorities do nothing).
        self.pool.setThreadPriority(QThread.Priority.LowestPriority)
        self._signals = _Signals()
        self._signals.decoded.connect(
            self._on_decoded,
            Qt.ConnectionType.QueuedConnection,  # type: ignore[call-arg]  # PyQt6 stubs omit the connection type
        )
        self.closed = False

    def get(self, artwork_id: int) -> QImage | None:
        """The thumbnail if decoded; otherwise schedule it and return None."""
        image = self._images.get(artwork_id)
        if image is not None:
            self._images.move_to_end(artwork_id)
            return image
        self._wanted[artwork_id] = self._generation
        if artwork_id not in self._pending and artwork_id not in self._missing:
            self._pending.add(artwork_id)
            self.pool.start(_DecodeJob(self, artwork_id, self._generation))
        return None

    def new_frame(self) -> None:
        """Called when the visible cards change: older requests may be dropped."""
        self._generation += 1
        if len(self._wanted) > 4096:
            self._wanted.clear()

    def _still_wanted(self, artwork_id: int, generation: int) -> bool:
        # Read from pool threads; a stale answer only costs one decode or one retry.
        return self._wanted.get(artwork_id, -1) >= self._generation - 2

    def invalidate(self, artwork_ids: set[int] | None = None) -> None:
        """Forget thumbnails (all, or of these artworks) after the catalog changed them."""
        ids = set(self._images) if artwork_ids is None else artwork_ids
        for i in ids:
            image = self._images.pop(i, None)
            if image is not None:
                self._bytes -= image.sizeInBytes()
        self._missing -= ids

    def _on_decoded(self, artwork_id: int, image: QImage, skipped: bool) -> None:
        self._pending.discard(artwork_id)
        if skipped:
            if self._still_wanted(artwork_id, self._generation):  # scrolled back meanwhile
                self._pending.add(artwork_id)
                self.pool.start(_DecodeJob(self, artwork_id, self._generation))
            return
        if image.isNull():
            self._missing.add(artwork_id)
            return
        self._images[artwork_id] = image
        self._bytes += image.sizeInBytes()
        while self._bytes > self.max_bytes and len(self._images) > 1:
            _, old = self._images.popitem(last=False)
            self._bytes -= old.sizeInBytes()
        self.ready.emit(artwork_id)

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    def wait_idle(self, msecs: int = 5000) -> bool:
        return self.pool.waitForDone(msecs)

    def close(self) -> None:
        """Drop queued decodes and wait for the running ones (window closing)."""
        self.closed = True
        self.pool.clear()
        self.pool.waitForDone(5000)
