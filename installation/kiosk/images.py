"""Full-size artwork images, loaded off the UI thread.

The artwork view and the attract mode show a painting at screen size. Reading a 6000-pixel
PNG takes far longer than a frame, so :class:`ImageLoader` reads it on a pool thread with the
catalog's own safe reader (``engine.catalog.images.load_rgb``: refuses decompression bombs and
truncated files, downsizes to ``max_side``), converts it to a ``QImage`` there, and hands it to
the UI thread by a queued signal. A few recent images stay cached so that going back to an
artwork, or the next slide of the attract mode, shows at once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PyQt6.QtCore import QObject, QRunnable, Qt, QThreadPool, pyqtSignal
from PyQt6.QtGui import QImage

log = logging.getLogger(__name__)


# The longest side an artwork is loaded at on a 1920x1080 screen (the painting view and attract
# mode show it at most about that large); a screen with more device pixels per Qt pixel (a
# 4K screen at a scale of 2) gets as many more, up to twice.
SCREEN_SIDE = 2048


def screen_side(device_pixel_ratio: float) -> int:
    """The longest side to load artworks at for a screen of this device pixel ratio."""
    return round(SCREEN_SIDE * min(2.0, max(1.0, device_pixel_ratio)))


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """An (H, W, 3) uint8 array as a QImage that owns a copy of the pixels."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape
    # PyQt6 takes any buffer for the pixels (no copy); its stubs say bytes.
    image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)  # type: ignore[call-overload]
    return image.convertToFormat(QImage.Format.Format_RGB32)  # a deep copy, fast to paint


class _Signals(QObject):
    loaded = pyqtSignal(int, QImage, str)  # artwork id, image (null on error), error text


class _LoadJob(QRunnable):
    def __init__(self, artwork_id: int, path: Path, max_side: int, signals: _Signals):
        super().__init__()
        self.artwork_id, self.path, self.max_side, self.signals = artwork_id, path, max_side, signals

    def run(self) -> None:
        from engine.catalog.images import load_rgb

        try:
            image = rgb_to_qimage(load_rgb(self.path, max_side=self.max_side))
            error = ""
        except Exception as exc:  # ImageError names the file; anything else is logged too
            log.warning("cannot show %s: %s", self.path, exc)
            image, error = QImage(), str(exc)
        self.signals.loaded.emit(self.artwork_id, image, error)


class ImageLoader(QObject):
    """Screen-size images by artwork id; :attr:`loaded` fires when one is ready."""

    loaded = pyqtSignal(int, QImage, str)

    def __init__(self, max_side: int = SCREEN_SIDE, keep: int = 6, parent: QObject | None = None):
        super().__init__(parent)
        self.max_side = max_side
        self.keep = keep
        self._cache: OrderedDict[int, QImage] = OrderedDict()
        self._pending: set[int] = set()
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._signals = _Signals()
        self._signals.loaded.connect(
            self._on_loaded,
            Qt.ConnectionType.QueuedConnection,  # type: ignore[call-arg]  # PyQt6 stubs omit the connection type
        )

    def cached(self, artwork_id: int) -> QImage | None:
        image = self._cache.get(artwork_id)
        if image is not None:
            self._cache.move_to_end(artwork_id)
        return image

    def request(self, artwork_id: int, path: Path) -> QImage | None:
        """The image if cached; otherwise start loading it and return None."""
        image = self.cached(artwork_id)
        if image is None and artwork_id not in self._pending:
            self._pending.add(artwork_id)
            self.pool.start(_LoadJob(artwork_id, Path(path), self.max_side, self._signals))
        return image

    def _on_loaded(self, artwork_id: int, image: QImage, error: str) -> None:
        self._pending.discard(artwork_id)
        if not image.isNull():
            self._cache[artwork_id] = image
            while len(self._cache) > self.keep:
                self._cache.popitem(last=False)
        self.loaded.emit(artwork_id, image, error)
