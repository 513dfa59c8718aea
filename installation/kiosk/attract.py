"""Attract mode: when nobody has touched the screen for a while, the collection drifts by.

Each artwork fills the screen and slowly pans and zooms (the "Ken Burns" effect), then
dissolves into the next; the room's music crossfades with it. A QTimer repaints at about
25 frames per second and the painter's transform does the motion, so the images are decoded
once per slide (off the UI thread, by :class:`ImageLoader`) and never rescaled per frame.
"""

from __future__ import annotations

import math
import random
import time

from PyQt6.QtCore import QPointF, QRectF, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QColor, QImage, QLinearGradient, QPainter
from PyQt6.QtWidgets import QWidget

from . import style
from .images import ImageLoader
from .services import ArtworkEntry, MusicState

DISSOLVE_SECONDS = 2.5
ZOOM = 0.12  # how much closer the end of a slide is than its start


class AttractPage(QWidget):
    slide_changed = pyqtSignal(int)  # artwork id now shown (the window crossfades the music)

    def __init__(self, theme: style.Theme, loader: ImageLoader, slide_seconds: float, parent=None):
        super().__init__(parent)
        self.theme = theme
        self.loader = loader
        self.slide_seconds = slide_seconds
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.entries: list[ArtworkEntry] = []
        self.paths: dict[int, str] = {}
        self.order: list[int] = []
        self.position = -1
        self.current: tuple[ArtworkEntry, QImage] | None = None
        self.previous: tuple[ArtworkEntry, QImage] | None = None
        self.started_at = 0.0
        self.motion = (QPointF(0.5, 0.5), QPointF(0.5, 0.5), True)
        self._last_motion = self.motion
        self._rng = random.Random(7)
        self.frame_timer = QTimer(self)
        self.frame_timer.setInterval(40)
        self.frame_timer.timeout.connect(self._frame)
        self.slide_timer = QTimer(self)
        self.slide_timer.setSingleShot(True)
        self.slide_timer.timeout.connect(self.next_slide)
        self._waiting_for: int | None = None
        loader.loaded.connect(self._on_loaded)
        self.title_font = theme.font("title")
        self.meta_font = theme.font("meta")
        self.hint_font = theme.font("body")

    # -- control ---------------------------------------------------------------------------
    def start(self, entries: list[ArtworkEntry], image_path) -> None:
        """Begin the slideshow over ``entries`` (music-ready ones first, shuffled)."""
        self.image_path = image_path
        ready = [e for e in entries if e.music == MusicState.READY]
        rest = [e for e in entries if e.music != MusicState.READY]
        self._rng.shuffle(ready)
        self._rng.shuffle(rest)
        self.entries = ready + rest
        self.position = -1
        self.previous = None
        self.current = None
        self.frame_timer.start()
        self.next_slide()

    def stop(self) -> None:
        self.frame_timer.stop()
        self.slide_timer.stop()
        self._waiting_for = None

    @property
    def running(self) -> bool:
        return self.frame_timer.isActive()

    def next_slide(self) -> None:
        # The show keeps the entries it began with; an artwork the curator deleted since has
        # no file (``image_path`` gives None): drop it, rather than ask the loader for the
        # collection folder and log a warning each round (found by benchmarks/soak.py).
        while self.entries:
            self.position = (self.position + 1) % len(self.entries)
            entry = self.entries[self.position]
            path = self.image_path(entry.id)
            if path is not None:
                break
            del self.entries[self.position]
            self.position -= 1
        else:
            self.update()
            return
        image = self.loader.request(entry.id, path)
        if image is None:
            self._waiting_for = entry.id  # shown when loaded; the current slide lingers
            self.slide_timer.start(int(self.slide_seconds * 1000))  # skip a file that never loads
        else:
            self._show(entry, image)

    def _on_loaded(self, artwork_id: int, image: QImage, error: str) -> None:
        if artwork_id != self._waiting_for or not self.running:
            return
        self._waiting_for = None
        if image.isNull():
            self.next_slide()
            return
        entry = next((e for e in self.entries if e.id == artwork_id), None)
        if entry is not None:
            self._show(entry, image)

    def _show(self, entry: ArtworkEntry, image: QImage) -> None:
        self.previous = self.current
        self._last_motion = self.motion
        self.current = (entry, image)
        self.started_at = time.monotonic()
        # A gentle drift between two points near the middle, zooming in or out.
        r = self._rng
        a = QPointF(0.5 + r.uniform(-0.12, 0.12), 0.5 + r.uniform(-0.1, 0.1))
        b = QPointF(0.5 + r.uniform(-0.12, 0.12), 0.5 + r.uniform(-0.1, 0.1))
        self.motion = (a, b, r.random() < 0.6)
        self.slide_timer.start(int(self.slide_seconds * 1000))
        nxt = self.entries[(self.position + 1) % len(self.entries)]
        nxt_path = self.image_path(nxt.id)
        if nxt_path is not None:
            self.loader.request(nxt.id, nxt_path)  # preload the next slide
        self.slide_changed.emit(entry.id)
        self.update()

    def _frame(self) -> None:
        self.update()

    # -- painting --------------------------------------------------------------------------
    def _paint_image(self, painter: QPainter, image: QImage, progress: float, motion, opacity: float) -> None:
        a, b, zoom_in = motion
        eased = 0.5 - 0.5 * math.cos(math.pi * min(1.0, max(0.0, progress)))
        zoom = 1.0 + ZOOM * (eased if zoom_in else 1.0 - eased)
        w, h = self.width(), self.height()
        # "Cover" the screen, then zoom; the focus point drifts from a to b.
        base = max(w / image.width(), h / image.height())
        scale = base * zoom
        sw, sh = image.width() * scale, image.height() * scale
        focus = QPointF(a.x() + (b.x() - a.x()) * eased, a.y() + (b.y() - a.y()) * eased)
        x = w / 2 - focus.x() * sw
        y = h / 2 - focus.y() * sh
        x = min(0.0, max(w - sw, x))  # never show an edge of the image
        y = min(0.0, max(h - sh, y))
        painter.setOpacity(opacity)
        painter.drawImage(QRectF(x, y, sw, sh), image)
        painter.setOpacity(1.0)

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), style.WALL)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        now = time.monotonic()
        elapsed = now - self.started_at
        total = self.slide_seconds + DISSOLVE_SECONDS
        if self.previous is not None and elapsed < DISSOLVE_SECONDS:
            progress = (self.slide_seconds + elapsed) / total  # it keeps drifting while it fades
            self._paint_image(painter, self.previous[1], progress, self._last_motion, 1.0)
        if self.current is not None:
            fade = min(1.0, elapsed / DISSOLVE_SECONDS) if self.previous is not None else 1.0
            self._paint_image(painter, self.current[1], elapsed / total, self.motion, fade)
            self._paint_caption(painter, self.current[0], min(1.0, elapsed / 1.5))
        elif not self.entries:
            painter.setPen(style.TEXT_SECONDARY)
            painter.setFont(self.hint_font)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Touch the screen to begin")

    def _paint_caption(self, painter: QPainter, entry: ArtworkEntry, alpha: float) -> None:
        w, h = self.width(), self.height()
        band = 380
        gradient = QLinearGradient(0, h - band, 0, h)
        gradient.setColorAt(0.0, QColor(0, 0, 0, 0))
        gradient.setColorAt(0.55, QColor(0, 0, 0, 150))
        gradient.setColorAt(1.0, QColor(0, 0, 0, 225))
        painter.fillRect(QRectF(0, h - band, w, band), gradient)
        margin = self.theme.page_margin
        painter.setOpacity(alpha)
        painter.setFont(self.title_font)
        title_h = painter.fontMetrics().height()
        meta = ", ".join(p for p in (entry.artist, entry.year) if p)
        title_box = QRectF(margin, h - 88 - title_h - 44, w * 0.6, title_h)
        meta_box = QRectF(margin, h - 88 - 36, w * 0.6, 40)
        self._shadowed(painter, title_box, entry.display_title, style.TEXT)
        painter.setFont(self.meta_font)
        self._shadowed(painter, meta_box, meta, style.TEXT)
        painter.setOpacity(1.0)
        painter.setFont(self.hint_font)
        self._shadowed(painter, QRectF(w * 0.5, h - 88 - 36, w * 0.5 - margin, 40),
                       "Touch the screen to explore the collection", style.TEXT,
                       Qt.AlignmentFlag.AlignRight)  # fmt: skip

    @staticmethod
    def _shadowed(
        painter: QPainter, box: QRectF, text: str, colour, align=Qt.AlignmentFlag.AlignLeft
    ) -> None:
        """Light text with a soft dark shadow: readable over any painting."""
        painter.setPen(QColor(0, 0, 0, 170))
        for dx, dy in ((1.5, 1.5), (0, 2)):
            painter.drawText(box.translated(dx, dy), align, text)
        painter.setPen(colour)
        painter.drawText(box, align, text)
