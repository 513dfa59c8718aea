"""One artwork, large: the painting, its label text, and what the room is playing."""

from __future__ import annotations

import numpy as np
from PyQt6.QtCore import QRectF, QSize, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QColor, QFontMetrics, QImage, QPainter
from PyQt6.QtWidgets import (
    QBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from . import style
from .now_playing import MusicCue, RoomMusic, making_note, split_caption
from .playback import NowPlaying
from .services import ArtworkDetail, KioskServices
from .touch import swipe_to_scroll


class PaintingWidget(QWidget):
    """Paints an image fitted inside the widget, never cropped or enlarged past 2x."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.image: QImage | None = None
        self.preview = False  # a thumbnail shown while the full image loads
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def set_image(self, image: QImage | None, *, preview: bool = False) -> None:
        self.image, self.preview = image, preview
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), style.WALL)
        if self.image is None or self.image.isNull():
            return
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        size = self.image.size()
        fitted = size.scaled(self.size(), Qt.AspectRatioMode.KeepAspectRatio)
        if fitted.width() > 2 * size.width() and not self.preview:
            fitted = size * 2
        target = QRectF(0, 0, fitted.width(), fitted.height())
        target.moveCenter(QRectF(self.rect()).center())
        painter.drawImage(target, self.image)


class MusicVisual(QWidget):
    """A quiet visual of the music: thin low-contrast bars following the spectrum (~30 fps)."""

    BANDS = 40

    def __init__(self, services: KioskServices, parent=None):
        super().__init__(parent)
        self.services = services
        self.values = np.zeros(self.BANDS, dtype=np.float32)
        self.timer = QTimer(self)
        self.timer.setInterval(33)
        self.timer.timeout.connect(self._tick)
        self.setFixedHeight(64)
        self.frames = 0

    def showEvent(self, event) -> None:
        self.timer.start()
        super().showEvent(event)

    def hideEvent(self, event) -> None:
        self.timer.stop()
        super().hideEvent(event)

    def _tick(self) -> None:
        try:
            target = np.clip(self.services.spectrum(self.BANDS), 0.0, 1.0)
        except Exception:
            target = np.zeros(self.BANDS, dtype=np.float32)
        if target.shape != self.values.shape:
            target = np.resize(target, self.values.shape)
        # Rise quickly, fall slowly: calm movement rather than flicker.
        rise = target > self.values
        self.values = np.where(rise, 0.5 * self.values + 0.5 * target, 0.88 * self.values + 0.12 * target)
        self.frames += 1
        self.update()

    def paintEvent(self, event) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        w, h = self.width(), self.height()
        step = w / self.BANDS
        bar = max(2.0, step * 0.35)
        colour = QColor(style.TEXT_SECONDARY)
        colour.setAlpha(110)
        painter.setBrush(colour)
        for i, v in enumerate(self.values):
            height = 3 + float(v) * (h - 3)
            painter.drawRoundedRect(QRectF(i * step, (h - height) / 2, bar, height), bar / 2, bar / 2)


# The page's frame around the painting: top and bottom margins, the gap before the text.
PAGE_TOP, PAGE_BOTTOM, COLUMN_GAP = 64, 72, 96


def text_column_width(theme: style.Theme, page_width: int) -> int:
    """The label column: 600 px at text scale 1, never more than 40 % of the page, so a
    small screen still gives the painting most of its width."""
    return min(theme.px(600), int(0.4 * page_width))


def portrait(page: QSize) -> bool:
    return page.height() > page.width()


def painting_area(theme: style.Theme, page: QSize) -> tuple[int, int]:
    """The painting's room on a page of this size (the curator panel's resolution check);
    on a portrait screen the label takes the lower half."""
    if portrait(page):
        height = int(0.5 * (page.height() - PAGE_TOP - PAGE_BOTTOM))
        return max(0, page.width() - 2 * theme.page_margin), max(0, height)
    width = page.width() - 2 * theme.page_margin - COLUMN_GAP - text_column_width(theme, page.width())
    return max(0, width), max(0, page.height() - PAGE_TOP - PAGE_BOTTOM)


class ArtworkPage(QWidget):
    """The painting on the left, its label and the music on the right."""

    back_requested = pyqtSignal()

    def __init__(self, theme: style.Theme, services: KioskServices, parent=None):
        super().__init__(parent)
        self.theme = theme
        self.services = services
        self.artwork_id: int | None = None
        self._texts: dict[QLabel, str] = {}  # the label texts as written (see _fit_texts)

        # Side by side on a landscape screen; on a portrait one the painting above its label.
        row = self.row = QBoxLayout(QBoxLayout.Direction.LeftToRight, self)
        row.setContentsMargins(theme.page_margin, PAGE_TOP, theme.page_margin, PAGE_BOTTOM)
        row.setSpacing(COLUMN_GAP)
        self.painting = PaintingWidget()
        row.addWidget(self.painting, 1)

        column = self.column = QWidget()
        column.setFixedWidth(text_column_width(theme, 1920))
        text = QVBoxLayout(column)
        text.setContentsMargins(0, 0, 0, 0)
        text.setSpacing(0)
        self.back = QPushButton("‹  All paintings")
        self.back.setProperty("quiet", True)
        self.back.setFont(theme.font("button"))
        self.back.setMinimumHeight(theme.touch_min)
        self.back.clicked.connect(self.back_requested)
        text.addWidget(self.back, 0, Qt.AlignmentFlag.AlignLeft)
        text.addSpacing(theme.px(24))
        # The label and the music below the button; on a short screen at a large text scale
        # they scroll (by touch) rather than being cut off.
        scroll = self.text_scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        # The thin bar (style.py) shows there is more below, where there is.
        scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        swipe_to_scroll(scroll.viewport())
        text.addWidget(scroll, 1)
        inner = self.inner = QWidget()
        scroll.setWidget(inner)
        text = QVBoxLayout(inner)
        text.setContentsMargins(0, 0, 0, 0)
        text.setSpacing(0)
        text.addSpacing(32)

        self.style_label = self._label("label", style.TEXT_SECONDARY)
        self.title = self._label("title", style.TEXT)
        self.artist = self._label("meta", style.TEXT)
        self.description = self._label("body", style.TEXT_SECONDARY)
        for widget, gap in (
            (self.style_label, 16),
            (self.title, 18),
            (self.artist, 36),
            (self.description, 0),
        ):
            text.addWidget(widget)
            text.addSpacing(gap)
        text.addStretch(1)

        rule = QWidget()
        rule.setFixedHeight(1)
        rule.setStyleSheet(f"background: {style.RULE.name()};")
        text.addWidget(rule)
        text.addSpacing(28)
        self.now_label = self._label("label", style.TEXT_SECONDARY)
        self.now_label.setText("Now playing")
        self.caption = self._label("caption", style.TEXT)  # the music in plain words
        self.detail = self._label("small", style.TEXT_SECONDARY)  # ...and in musical terms
        self.note = self._label("small", style.TEXT_SECONDARY)  # how it was made
        self.cue = self._label("small", style.ACCENT)  # "changing…", "its own music is ready"
        self.composing = self._label("small", style.ACCENT)
        self.visual = MusicVisual(services)
        playing: tuple[tuple[QWidget, int], ...] = (
            (self.now_label, 12),
            (self.caption, 10),
            (self.detail, 10),
            (self.note, 14),
            (self.cue, 6),
            (self.composing, 20),
            (self.visual, 0),
        )
        for part, gap in playing:
            text.addWidget(part)
            text.addSpacing(gap)
        row.addWidget(column, 0)

    def _label(self, role: str, colour) -> QLabel:
        label = QLabel()
        label.setFont(self.theme.font(role))
        label.setWordWrap(True)
        label.setStyleSheet(f"color: {colour.name()};")
        label.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        return label

    def show_artwork(self, detail: ArtworkDetail, image: QImage | None, preview: QImage | None) -> None:
        self.artwork_id = detail.id
        self._texts = {
            self.style_label: detail.style,
            self.title: detail.title,
            self.artist: ", ".join(p for p in (detail.artist, detail.year) if p),
        }
        self._fit_texts()
        self.style_label.setVisible(bool(detail.style))
        self._refit()
        self.description.setText(detail.description)
        for label in (self.caption, self.detail, self.note, self.cue, self.composing):
            label.setText("")
        self.now_label.setText("Now playing")
        if image is not None:
            self.painting.set_image(image)
        else:
            self.painting.set_image(preview, preview=True)

    def image_loaded(self, artwork_id: int, image: QImage) -> None:
        if artwork_id == self.artwork_id and not image.isNull():
            self.painting.set_image(image)

    def set_room(self, room: RoomMusic | None) -> None:
        """Say what the room plays (it may still be crossfading to it): its caption, how it
        was made, and whose music it is when it is not this painting's."""
        if room is None:
            self.caption.setText("—")
            return
        plain, detail = split_caption(room.caption)
        self.caption.setText(plain or "—")
        self.detail.setText(detail)
        self.note.setText(making_note(room.engine))
        own = room.artwork_id == self.artwork_id
        self.now_label.setText("Now playing" if own else f"Now playing: the music of “{room.title}”")
        cue = ""
        if room.cue == MusicCue.OWN_ARRIVED and own:
            cue = "♪  This painting's own music is ready: it is fading in now."
        elif room.cue != MusicCue.PLAYING:
            cue = "♪  The music is changing…"
        self.cue.setText(cue)
        for label in (self.detail, self.cue):
            label.setVisible(bool(label.text()))
        self._refit()

    def set_now_playing(self, info: NowPlaying) -> None:
        """Whether this painting's own music is on its way (the caption follows the room)."""
        if info.artwork_id != self.artwork_id:
            return
        if info.composing:
            meanwhile = f" Meanwhile, the music of “{info.source_title}”." if info.source_title else ""
            self.composing.setText("◌  Composing this painting's music…" + meanwhile)
        else:
            self.composing.setText("")
        self.composing.setVisible(bool(self.composing.text()))
        self._refit()

    def sizeHint(self) -> QSize:
        return QSize(1920, 1080)

    def _fit_texts(self) -> None:
        """A word wider than the column (a long style name in capitals at text scale 2) is
        elided rather than cut off at the edge."""
        width = self.column.width()
        for label, text in self._texts.items():
            metrics = QFontMetrics(label.font())
            words = [metrics.elidedText(w, Qt.TextElideMode.ElideRight, width) for w in text.split(" ")]
            label.setText(" ".join(words))

    def _share_portrait(self, size: QSize) -> None:
        """On a portrait screen the label and the music take what they need below the
        painting, and the painting the rest (never less than 40 % of the page)."""
        room = size.height() - PAGE_TOP - PAGE_BOTTOM - COLUMN_GAP
        width = size.width() - 2 * self.theme.page_margin
        needed = (
            self.back.sizeHint().height() + self.theme.px(24) + self.inner.layout().totalHeightForWidth(width)
        )
        self.painting.setMaximumHeight(max(room // 3, room - needed))

    def _refit(self) -> None:
        if portrait(self.size()):
            self._share_portrait(self.size())

    def resizeEvent(self, event) -> None:
        size = event.size()
        if portrait(size):  # the painting above its label
            self.row.setDirection(QBoxLayout.Direction.TopToBottom)
            self.row.setSpacing(COLUMN_GAP // 2)
            self.column.setFixedWidth(size.width() - 2 * self.theme.page_margin)
            self._share_portrait(size)
        else:
            self.row.setDirection(QBoxLayout.Direction.LeftToRight)
            self.row.setSpacing(COLUMN_GAP)
            self.column.setFixedWidth(text_column_width(self.theme, size.width()))
            self.painting.setMaximumHeight(16_777_215)
        self._fit_texts()
        super().resizeEvent(event)
