"""Attract mode: when nobody has touched the screen for a while, the collection drifts by.

Each painting is shown whole, as a museum's image policy asks: fitted into the screen, never
cropped, never enlarged beyond ``kiosk.attract_max_zoom`` times its own pixels, and never
printed over. Its label (title, artist, what the room plays, the invitation to touch) sits on
the wall colour below the painting, or beside it when that leaves the painting more room (a
portrait on a landscape screen). With ``kiosk.attract_motion`` the painting breathes: a slow
zoom of a few per cent and a drift of a few dozen pixels, always inside its own area, so the
motion can never crop it either. Slides dissolve into each other and the room's music
follows them.

A QTimer repaints at about 25 frames per second and the painter's transform does the motion,
so the images are decoded once per slide (off the UI thread, by :class:`ImageLoader`) and
never rescaled per frame.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from dataclasses import dataclass

from PyQt6.QtCore import QPointF, QRectF, QSizeF, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QColor, QFontMetricsF, QImage, QPainter
from PyQt6.QtWidgets import QWidget

from . import style
from .images import ImageLoader
from .now_playing import MusicCue, RoomMusic, heading_text
from .services import ArtworkEntry, MusicState

DISSOLVE_SECONDS = 2.5
BREATH = 0.06  # the motion's zoom: the painting is at most this much smaller than its largest
DRIFT = 0.025  # the motion's drift, as a share of the screen's shorter side
TOUCH_HINT = "Touch the screen to explore the collection"
WRAP = Qt.TextFlag.TextWordWrap


@dataclass(frozen=True)
class SlideLayout:
    """Where one slide's painting and label go."""

    area: QRectF  # the painting is drawn inside this rectangle, whole
    label: QRectF  # the label's column, on the wall
    scale: float  # the painting's largest scale (image pixels -> screen pixels)
    beside: bool  # label beside the painting (else below it)
    natural_width: float = 0.0  # the label's widest line, unwrapped (0: the column's width)


def largest_scale(area: QSizeF, image: QSizeF, native: QSizeF | None, max_zoom: float) -> float:
    """The scale that fits ``image`` inside ``area`` without showing the work beyond
    ``max_zoom`` times its own size (``native``: the file's pixels; the loaded image may be
    a smaller copy)."""
    if image.width() <= 0 or image.height() <= 0 or area.width() <= 0 or area.height() <= 0:
        return 0.0
    fit = min(area.width() / image.width(), area.height() / image.height())
    own = native if native is not None and native.width() > 0 else image
    return min(fit, max_zoom * own.width() / image.width())


def slide_layout(
    screen: QSizeF,
    image: QSizeF,
    native: QSizeF | None,
    *,
    margin: float,
    gap: float,
    label_below: float,
    label_width: float,
    label_beside: float,
    max_zoom: float,
) -> SlideLayout:
    """Below or beside, whichever shows the painting larger (below on a tie).

    ``label_below`` is the label's height when it spans the screen's width below the
    painting; ``label_beside`` its height in a column ``label_width`` wide.
    """
    w, h = screen.width(), screen.height()
    below_area = QRectF(margin, margin, w - 2 * margin, max(0.0, h - 2 * margin - gap - label_below))
    below = SlideLayout(
        below_area,
        QRectF(margin, below_area.bottom() + gap, w - 2 * margin, label_below),
        largest_scale(below_area.size(), image, native, max_zoom),
        False,
    )
    side_area = QRectF(margin, margin, max(0.0, w - 2 * margin - gap - label_width), h - 2 * margin)
    beside = SlideLayout(
        side_area,
        QRectF(side_area.right() + gap, h - margin - label_beside, label_width, label_beside),
        largest_scale(side_area.size(), image, native, max_zoom),
        True,
    )
    fits_beside = label_beside <= h - 2 * margin and side_area.width() > 0
    return beside if fits_beside and beside.scale > below.scale * 1.05 else below


def image_rect(layout: SlideLayout, image: QSizeF, eased: float, motion, drift_px: float) -> QRectF:
    """The painting's rectangle at ``eased`` (0..1) through its slide: always inside
    ``layout.area``. ``motion`` is (start, end, zoom_in) or None (still)."""
    scale = layout.scale
    if motion is not None:
        a, b, zoom_in = motion
        scale *= 1.0 - BREATH * ((1.0 - eased) if zoom_in else eased)
        offset = QPointF(a.x() + (b.x() - a.x()) * eased, a.y() + (b.y() - a.y()) * eased) * drift_px
    else:
        offset = QPointF(0, 0)
    sw, sh = image.width() * scale, image.height() * scale
    area = layout.area
    # Centred in its area; the label follows it (label_rect), so painting and label stand
    # together in the middle of the wall.
    base_x = area.center().x() - sw / 2
    base_y = area.center().y() - sh / 2
    # The drift never takes the painting out of its area.
    x = max(area.left(), min(area.right() - sw, base_x + offset.x()))
    y = max(area.top(), min(area.bottom() - sh, base_y + offset.y()))
    return QRectF(x, y, sw, sh)


def label_rect(
    layout: SlideLayout,
    still: QRectF,
    natural_width: float,
    screen: QSizeF,
    margin: float,
    drift: float = 0.0,
) -> QRectF:
    """The label right of the still painting, its foot level with the painting's (beside),
    or right under it from its left edge (below); never outside the screen, never on the
    painting (it keeps ``drift``, the motion's reach, from the still painting, and moves
    only towards the edge of the painting's area it was measured against)."""
    label = layout.label
    width = min(label.width(), natural_width)
    if layout.beside:
        gap = label.left() - layout.area.right()
        left = min(label.left(), still.right() + gap + drift)
        top = max(margin, min(screen.height() - margin - label.height(), still.bottom() - label.height()))
        return QRectF(left, top, width, label.height())
    gap = label.top() - layout.area.bottom()
    left = max(label.left(), min(label.right() - width, still.left()))
    return QRectF(left, min(label.top(), still.bottom() + gap + drift), width, label.height())


def reserved_now_playing(entry: ArtworkEntry) -> str:
    """The longest "now playing" line a slide shows (its own music arriving): what its label
    keeps room for."""
    room = RoomMusic(0, entry.id, entry.display_title, entry.artist, "", "", MusicCue.OWN_ARRIVED)
    return heading_text(room)


class AttractPage(QWidget):
    slide_changed = pyqtSignal(int)  # artwork id now shown (the window crossfades the music)

    def __init__(
        self,
        theme: style.Theme,
        loader: ImageLoader,
        slide_seconds: float,
        parent=None,
        *,
        max_zoom: float = 1.5,
        motion: bool = True,
    ):
        super().__init__(parent)
        self.theme = theme
        self.loader = loader
        self.slide_seconds = slide_seconds
        self.max_zoom = max_zoom
        self.motion_allowed = motion
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.entries: list[ArtworkEntry] = []
        self.position = -1
        self.current: tuple[ArtworkEntry, QImage] | None = None
        self.previous: tuple[ArtworkEntry, QImage] | None = None
        self.started_at = 0.0
        self.motion: tuple[QPointF, QPointF, bool] | None = None
        self._last_motion: tuple[QPointF, QPointF, bool] | None = self.motion
        self.now_playing = ""  # what the room plays, said under the title
        self._layouts: dict[tuple, tuple[SlideLayout, dict]] = {}
        self._rng = random.Random(7)
        self.frame_timer = QTimer(self)
        self.frame_timer.setInterval(40)
        self.frame_timer.timeout.connect(self._frame)
        self.slide_timer = QTimer(self)
        self.slide_timer.setSingleShot(True)
        self.slide_timer.timeout.connect(self.next_slide)
        self._waiting_for: int | None = None
        loader.loaded.connect(self._on_loaded)
        self.fonts = {role: theme.font(role) for role in ("title", "meta", "body", "small")}
        # On a short screen at a large text scale the label would leave the painting little
        # room: there it is set at text scale 1 (still 23 px and more, legible from 2 m).
        compact = style.Theme(min(1.0, theme.text_scale))
        self.compact_fonts = {role: compact.font(role) for role in self.fonts}
        self._font_set = self.fonts

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

    def set_now_playing(self, text: str) -> None:
        self.now_playing = text
        self.update()

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
        if self.motion_allowed:  # a gentle drift between two points, zooming in or out
            r = self._rng
            a = QPointF(r.uniform(-1, 1), r.uniform(-1, 1))
            b = QPointF(r.uniform(-1, 1), r.uniform(-1, 1))
            self.motion = (a, b, r.random() < 0.6)
        else:
            self.motion = None
        self.slide_timer.start(int(self.slide_seconds * 1000))
        nxt = self.entries[(self.position + 1) % len(self.entries)]
        nxt_path = self.image_path(nxt.id)
        if nxt_path is not None:
            self.loader.request(nxt.id, nxt_path)  # preload the next slide
        self.slide_changed.emit(entry.id)
        self.update()

    def _frame(self) -> None:
        if self.motion is not None or self.previous is not None:
            self.update()  # a still slide repaints only while it dissolves in

    # -- geometry --------------------------------------------------------------------------
    def _label_lines(
        self, entry: ArtworkEntry, now_playing: str | None = None
    ) -> list[tuple[str, str, QColor]]:
        """(font role, text, colour) of the label, top to bottom (``now_playing``: the text
        to measure in place of the current one)."""
        meta = ", ".join(p for p in (entry.artist, entry.year) if p)
        lines = [("title", entry.display_title, style.TEXT), ("meta", meta, style.TEXT_SECONDARY)]
        playing = self.now_playing if now_playing is None else now_playing
        if playing:
            lines.append(("body", playing, style.ACCENT))
        lines.append(("small", TOUCH_HINT, style.TEXT_SECONDARY))
        return [line for line in lines if line[1]]

    def _label_height(self, entry: ArtworkEntry, width: float, fonts: dict) -> float:
        total = 0.0
        for role, text, _ in self._label_lines(entry, reserved_now_playing(entry)):
            box = QFontMetricsF(fonts[role]).boundingRect(QRectF(0, 0, width, 1e6), WRAP, text)
            total += box.height() + self._line_gap
        return total

    @property
    def _line_gap(self) -> float:
        return self.theme.px(10)

    def layout_for(self, entry: ArtworkEntry, image: QImage) -> SlideLayout:
        """The slide's layout, measured once per slide and screen size. The "now playing" line
        has its room kept from the start, so the painting stays put when the music starts or
        changes during the slide."""
        key = (entry.id, image.cacheKey(), self.width(), self.height())
        found = self._layouts.get(key)
        if found is None:
            if len(self._layouts) > 4:  # the current and the previous slide are what count
                self._layouts.clear()
            found = self._layouts[key] = self._measure(entry, image)
        return found[0]

    def label_fonts(self, entry: ArtworkEntry, image: QImage) -> dict:
        self.layout_for(entry, image)
        key = (entry.id, image.cacheKey(), self.width(), self.height())
        return self._layouts[key][1]

    def _measure(self, entry: ArtworkEntry, image: QImage) -> tuple[SlideLayout, dict]:
        """The layout and the fonts of its label: the theme's, or the compact ones where the
        theme's would take more than a third of a short screen."""
        w, h = self.width(), self.height()
        margin = min(self.theme.page_margin, 0.06 * min(w, h))
        column = min(self.theme.px(520), 0.4 * w)
        native = QSizeF(entry.width, entry.height) if entry.width and entry.height else None
        for fonts in (self.fonts, self.compact_fonts):
            layout = slide_layout(
                QSizeF(w, h),
                QSizeF(image.size()),
                native,
                margin=margin,
                gap=self.theme.px(28),
                label_below=self._label_height(entry, w - 2 * margin, fonts),
                label_width=column,
                label_beside=self._label_height(entry, column, fonts),
                max_zoom=self.max_zoom,
            )
            if layout.beside or layout.label.height() <= h / 3:
                break
        widest = max(
            QFontMetricsF(fonts[role]).horizontalAdvance(text)
            for role, text, _ in self._label_lines(entry, reserved_now_playing(entry))
        )
        return dataclasses.replace(layout, natural_width=widest + 2), fonts

    def shown_rect(self) -> QRectF:
        """Where the current painting is now (tests: it is whole and on screen)."""
        if self.current is None:
            return QRectF()
        entry, image = self.current
        return self._rect_at(entry, image, self._progress(time.monotonic() - self.started_at), self.motion)

    def shown_rect_of(self, entry: ArtworkEntry, image: QImage) -> QRectF:
        """Where a slide's painting is when it starts (still)."""
        return image_rect(self.layout_for(entry, image), QSizeF(image.size()), 0.0, None, 0)

    def _progress(self, elapsed: float) -> float:
        return elapsed / (self.slide_seconds + DISSOLVE_SECONDS)

    def _rect_at(self, entry: ArtworkEntry, image: QImage, progress: float, motion) -> QRectF:
        eased = 0.5 - 0.5 * math.cos(math.pi * min(1.0, max(0.0, progress)))
        drift = DRIFT * min(self.width(), self.height())
        return image_rect(self.layout_for(entry, image), QSizeF(image.size()), eased, motion, drift)

    # -- painting --------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), style.WALL)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        elapsed = time.monotonic() - self.started_at
        if self.previous is not None and elapsed < DISSOLVE_SECONDS:
            entry, image = self.previous
            # It keeps drifting while it fades, and its label fades with it.
            progress = self._progress(self.slide_seconds + elapsed)
            fade = 1.0 - elapsed / DISSOLVE_SECONDS
            painter.setOpacity(fade)
            painter.drawImage(self._rect_at(entry, image, progress, self._last_motion), image)
            self._paint_label(painter, entry, image)
            painter.setOpacity(1.0)
        elif self.previous is not None:
            self.previous = None  # the dissolve is over
        if self.current is not None:
            entry, image = self.current
            fade = min(1.0, elapsed / DISSOLVE_SECONDS) if self.previous is not None else 1.0
            painter.setOpacity(fade)
            painter.drawImage(self._rect_at(entry, image, self._progress(elapsed), self.motion), image)
            painter.setOpacity(fade * min(1.0, elapsed / 1.5) if self.previous is not None else 1.0)
            self._paint_label(painter, entry, image)
            painter.setOpacity(1.0)
        elif not self.entries:
            painter.setPen(style.TEXT_SECONDARY)
            painter.setFont(self.fonts["body"])
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "Touch the screen to begin")

    def placed_label(self, entry: ArtworkEntry, image: QImage) -> QRectF:
        """Where the slide's label stands (beside or below the still painting)."""
        layout = self.layout_for(entry, image)
        still = image_rect(layout, QSizeF(image.size()), 0.0, None, 0)
        margin = min(self.theme.page_margin, 0.06 * min(self.width(), self.height()))
        drift = DRIFT * min(self.width(), self.height()) if self.motion_allowed else 0.0
        natural = layout.natural_width or layout.label.width()
        return label_rect(layout, still, natural, QSizeF(self.size()), margin, drift)

    def _paint_label(self, painter: QPainter, entry: ArtworkEntry, image: QImage) -> None:
        """The label on the wall (never on the painting), lines stacked top to bottom."""
        fonts = self.label_fonts(entry, image)
        placed = self.placed_label(entry, image)
        y, width = placed.top(), placed.width()
        for role, text, colour in self._label_lines(entry):
            painter.setFont(fonts[role])
            painter.setPen(colour)
            used = painter.boundingRect(QRectF(placed.left(), y, width, 1e6), WRAP, text)
            painter.drawText(QRectF(placed.left(), y, width, used.height()), WRAP, text)
            y += used.height() + self._line_gap
