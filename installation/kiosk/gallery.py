"""The gallery: the whole collection as large cards, scrolled by touch.

A virtualised model/view: :class:`GalleryModel` holds one small :class:`ArtworkEntry` per
artwork (no pixels), :class:`GalleryView` (a ``QListView`` in icon mode with uniform item
sizes) lays out only what is visible, and :class:`CardDelegate` paints each visible card from
the thumbnail cache. 10,000 artworks cost a few megabytes here; thumbnails are decoded only
for the cards on screen.
"""

from __future__ import annotations

from collections import OrderedDict

from PyQt6.QtCore import (
    QAbstractListModel,
    QEvent,
    QModelIndex,
    QPoint,
    QPointF,
    QRect,
    QRectF,
    QSize,
    Qt,
    pyqtSignal,
)
from PyQt6.QtGui import (
    QColor,
    QFontMetrics,
    QImage,
    QInputDevice,
    QLinearGradient,
    QPainter,
    QPainterPath,
    QPen,
)
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QListView,
    QScroller,
    QScrollerProperties,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from . import style
from .now_playing import RoomMusic, heading_text
from .services import ArtworkEntry, MusicState
from .thumbnails import ThumbnailCache

ENTRY_ROLE = Qt.ItemDataRole.UserRole + 1


# The invalid index Qt passes for "the top level"; one instance, not a call per default.
_ROOT = QModelIndex()


class GalleryModel(QAbstractListModel):
    """The visitors' view of the collection, refreshed from the store."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._entries: list[ArtworkEntry] = []
        self._row_of: dict[int, int] = {}
        self.playing_id: int | None = None

    def rowCount(self, parent: QModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self._entries)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        entry = self._entries[index.row()]
        if role == ENTRY_ROLE:
            return entry
        if role == Qt.ItemDataRole.DisplayRole:
            return entry.display_title
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{entry.display_title}, {entry.artist}, {entry.year}"
        return None

    def entry(self, row: int) -> ArtworkEntry:
        return self._entries[row]

    def entries(self) -> list[ArtworkEntry]:
        return list(self._entries)

    def row_of(self, artwork_id: int) -> int | None:
        return self._row_of.get(artwork_id)

    def set_entries(self, entries: list[ArtworkEntry]) -> set[int]:
        """Show ``entries``; returns the ids whose thumbnails may have changed.

        When the same artworks are in the same order only the changed cards repaint;
        otherwise the model resets (the view keeps its scroll position, see GalleryView).
        """
        old = {e.id: e for e in self._entries}
        same_order = [e.id for e in entries] == [e.id for e in self._entries]
        changed_images = {e.id for e in entries if e.id in old and old[e.id].image_hash != e.image_hash}
        if same_order:
            self._entries = entries
            for row, e in enumerate(entries):
                if old[e.id] != e:
                    idx = self.index(row)
                    self.dataChanged.emit(idx, idx)
        else:
            self.beginResetModel()
            self._entries = entries
            self._row_of = {e.id: row for row, e in enumerate(entries)}
            self.endResetModel()
        return changed_images

    def set_playing(self, artwork_id: int | None) -> None:
        previous, self.playing_id = self.playing_id, artwork_id
        for i in (previous, artwork_id):
            row = self._row_of.get(i) if i is not None else None
            if row is not None:
                idx = self.index(row)
                self.dataChanged.emit(idx, idx)


def paint_status_icon(painter: QPainter, kind: str, rect: QRectF) -> None:
    """Status by shape as well as words: filled disc = ready, open ring = composing,
    hollow square with a bar = unavailable, three bars = now playing."""
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    pen = QPen(painter.pen().color(), max(1.5, rect.width() / 10))
    painter.setPen(pen)
    c = rect.center()
    r = min(rect.width(), rect.height()) / 2 - pen.widthF()
    if kind == MusicState.READY:
        painter.setBrush(painter.pen().color())
        painter.drawEllipse(c, r, r)
        path = QPainterPath()  # a play triangle cut out of the disc
        path.moveTo(c + QPointF(-r * 0.3, -r * 0.45))
        path.lineTo(c + QPointF(r * 0.5, 0))
        path.lineTo(c + QPointF(-r * 0.3, r * 0.45))
        path.closeSubpath()
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(style.WALL)
        painter.drawPath(path)
    elif kind in (MusicState.COMPOSING, MusicState.WAITING):
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawArc(QRectF(c.x() - r, c.y() - r, 2 * r, 2 * r), 90 * 16, 270 * 16)
        painter.setBrush(painter.pen().color())
        painter.drawEllipse(c, r * 0.22, r * 0.22)
    elif kind == MusicState.FAILED:
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(QRectF(c.x() - r * 0.8, c.y() - r * 0.8, 1.6 * r, 1.6 * r))
        painter.drawLine(c + QPointF(-r * 0.45, 0), c + QPointF(r * 0.45, 0))
    elif kind == "playing":
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(style.ACCENT)
        w = r * 0.45
        for i, h in enumerate((0.9, 1.6, 1.2)):
            x = c.x() - r + i * (w + r * 0.3)
            painter.drawRect(QRectF(x, c.y() + r - h * r, w, h * r))
    painter.restore()


STATUS_TEXT = {
    MusicState.READY: "Music ready",
    MusicState.COMPOSING: "Music being composed",
    MusicState.WAITING: "Music being composed",
    MusicState.FAILED: "Music not available",
    "playing": "Now playing",
}


class CardDelegate(QStyledItemDelegate):
    """Paints one artwork card: the thumbnail on its mat, title, artist and year, status."""

    def __init__(self, theme: style.Theme, thumbnails: ThumbnailCache, parent=None):
        super().__init__(parent)
        self.theme = theme
        self.thumbnails = thumbnails
        self.title_font = theme.font("card-title")
        self.meta_font = theme.font("meta")
        self.status_font = theme.font("small")
        self.title_metrics = QFontMetrics(self.title_font)
        self.meta_metrics = QFontMetrics(self.meta_font)
        self.status_metrics = QFontMetrics(self.status_font)
        self.pressed_row = -1
        # Rendered cards by artwork id: (what they show, image); about three screens' worth.
        self._sprites: OrderedDict[int, tuple[tuple, QImage]] = OrderedDict()
        self.max_sprites = 64

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return QSize(self.theme.card_width, self.theme.card_height)

    def image_rect(self, card: QRect) -> QRect:
        return QRect(card.left(), card.top(), card.width(), self.theme.card_image_height)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        """Blit the card's sprite; render it first if its looks changed.

        A card is rendered once (mat, thumbnail, three lines of text, status icon) into an
        image of its own, so a scrolling frame costs one image copy per visible card.
        """
        entry: ArtworkEntry = index.data(ENTRY_ROLE)
        pressed = bool(option.state & QStyle.StateFlag.State_Sunken) or index.row() == self.pressed_row
        playing = getattr(index.model(), "playing_id", None) == entry.id
        image = self.thumbnails.get(entry.id)
        dpr = option.widget.devicePixelRatioF() if option.widget is not None else 1.0
        key = (entry, image is not None and image.cacheKey(), pressed, playing, dpr)
        sprite = self._sprites.get(entry.id)
        if sprite is None or sprite[0] != key:
            sprite = (key, self._render(entry, image, pressed, playing, dpr))
            self._sprites[entry.id] = sprite
            while len(self._sprites) > self.max_sprites:
                self._sprites.popitem(last=False)
        else:
            self._sprites.move_to_end(entry.id)
        painter.drawImage(option.rect.topLeft(), sprite[1])

    def _render(self, entry: ArtworkEntry, image, pressed: bool, playing: bool, dpr: float) -> QImage:
        theme = self.theme
        sprite = QImage(
            round(theme.card_width * dpr), round(theme.card_height * dpr), QImage.Format.Format_RGB32
        )
        sprite.setDevicePixelRatio(dpr)
        sprite.fill(style.WALL)
        painter = QPainter(sprite)
        painter.setRenderHint(QPainter.RenderHint.TextAntialiasing)
        card = QRect(0, 0, theme.card_width, theme.card_height)

        # The thumbnail on its mat, fitted without cropping (paintings are not cropped).
        mat = self.image_rect(card)
        painter.fillRect(mat, style.MAT_PRESSED if pressed else style.MAT)
        inner = mat.adjusted(18, 18, -18, -18)
        if image is not None:
            target = QRect(QPoint(0, 0), image.deviceIndependentSize().toSize())  # decoded at this size
            target.moveCenter(inner.center())
            painter.drawImage(target.topLeft(), image)
        else:
            painter.setPen(QPen(style.RULE, 1))
            painter.drawRect(inner.adjusted(inner.width() // 3, inner.height() // 3,
                                            -inner.width() // 3, -inner.height() // 3))  # fmt: skip

        # Title, then artist and year, then the music status (icon shape + words).
        x, width = card.left() + 2, card.width() - 4
        y = mat.bottom() + 22
        painter.setFont(self.title_font)
        painter.setPen(style.TEXT)
        title = self.title_metrics.elidedText(entry.display_title, Qt.TextElideMode.ElideRight, width)
        painter.drawText(QRect(x, y, width, self.title_metrics.height()), 0, title)
        y += self.title_metrics.height() + 2

        painter.setFont(self.meta_font)
        painter.setPen(style.TEXT_SECONDARY)
        meta = " · ".join(p for p in (entry.artist, entry.year) if p)
        meta = self.meta_metrics.elidedText(meta, Qt.TextElideMode.ElideRight, width)
        painter.drawText(QRect(x, y, width, self.meta_metrics.height()), 0, meta)
        y += self.meta_metrics.height() + 12

        kind = "playing" if playing else entry.music
        icon_size = self.status_metrics.height() * 0.8
        painter.setFont(self.status_font)
        painter.setPen(style.ACCENT if playing else style.TEXT_SECONDARY)
        icon = QRectF(x, y + (self.status_metrics.height() - icon_size) / 2, icon_size, icon_size)
        paint_status_icon(painter, kind, icon)
        text_x = int(x + icon_size + 12)
        painter.drawText(
            QRect(text_x, y, width - text_x + x, self.status_metrics.height()), 0, STATUS_TEXT[kind]
        )
        painter.end()
        return sprite


class GalleryView(QListView):
    """Icon-mode list view tuned for a touch wall: kinetic scrolling, centred columns."""

    artwork_activated = pyqtSignal(int)
    margins_changed = pyqtSignal(int)  # the left edge of the first column

    def __init__(self, theme: style.Theme, thumbnails: ThumbnailCache, parent=None):
        super().__init__(parent)
        self.theme = theme
        self.thumbnails = thumbnails
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setMovement(QListView.Movement.Static)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.SinglePass)
        self.setGridSize(QSize(theme.card_width + theme.card_spacing,
                               theme.card_height + theme.card_spacing))  # fmt: skip
        self.setSpacing(0)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setFrameShape(QListView.Shape.NoFrame)
        self.setDragEnabled(False)
        self.setAutoScroll(False)  # a touched card must not jump into view under the finger
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)
        self.setItemDelegate(CardDelegate(theme, thumbnails, self))
        self.setStyleSheet(f"QListView {{ background: {style.WALL.name()}; border: none; }}")
        self.empty_text = "The collection is being prepared…"
        self.clicked.connect(self._on_clicked)
        self.verticalScrollBar().valueChanged.connect(lambda _: thumbnails.new_frame())
        thumbnails.ready.connect(self._on_thumbnail)
        self._install_scroller()

    def _install_scroller(self) -> None:
        touch = any(d.type() == QInputDevice.DeviceType.TouchScreen for d in QInputDevice.devices())
        gesture = (
            QScroller.ScrollerGestureType.TouchGesture
            if touch
            else QScroller.ScrollerGestureType.LeftMouseButtonGesture
        )
        QScroller.grabGesture(self.viewport(), gesture)
        scroller = QScroller.scroller(self.viewport())
        props = scroller.scrollerProperties()
        P = QScrollerProperties.ScrollMetric
        off = QScrollerProperties.OvershootPolicy.OvershootAlwaysOff
        props.setScrollMetric(P.VerticalOvershootPolicy, off)
        props.setScrollMetric(P.HorizontalOvershootPolicy, off)
        props.setScrollMetric(P.DecelerationFactor, 0.35)
        props.setScrollMetric(P.MaximumVelocity, 1.2)
        props.setScrollMetric(P.MousePressEventDelay, 0.05)  # taps feel immediate
        props.setScrollMetric(P.DragStartDistance, 0.004)  # metres: a finger's wobble is a tap
        props.setScrollMetric(P.FrameRate, QScrollerProperties.FrameRates.Fps60)
        scroller.setScrollerProperties(props)
        self.scroller = scroller

    # A touched card darkens its mat at once: the visitor sees the touch was felt.
    def mousePressEvent(self, event) -> None:
        super().mousePressEvent(event)
        self._set_pressed(self.indexAt(event.position().toPoint()).row())

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        self._set_pressed(-1)

    def mouseMoveEvent(self, event) -> None:
        super().mouseMoveEvent(event)
        if self.itemDelegate().pressed_row != -1 and self.scroller.state() == QScroller.State.Dragging:
            self._set_pressed(-1)  # it became a swipe

    def _set_pressed(self, row: int) -> None:
        delegate = self.itemDelegate()
        previous, delegate.pressed_row = delegate.pressed_row, row
        for r in {previous, row} - {-1}:
            self.viewport().update(self.visualRect(self.model().index(r)))

    def _on_clicked(self, index: QModelIndex) -> None:
        if index.isValid() and self.scroller.state() != QScroller.State.Scrolling:
            self.artwork_activated.emit(index.data(ENTRY_ROLE).id)

    def _on_thumbnail(self, artwork_id: int) -> None:
        row = self.model().row_of(artwork_id) if self.model() is not None else None
        if row is not None:
            self.viewport().update(self.visualRect(self.model().index(row)))

    def card_rect(self, artwork_id: int) -> QRect:
        """Where an artwork's card is in viewport coordinates (tests, benchmarks)."""
        row = self.model().row_of(artwork_id)
        return QRect() if row is None else self.visualRect(self.model().index(row))

    def resizeEvent(self, event) -> None:
        # Centre the columns: equal margins left and right, at least the page margin.
        grid = self.gridSize().width()
        available = self.width() - 2 * self.theme.page_margin + self.theme.card_spacing
        columns = max(1, available // grid)
        side = max(0, (self.width() - columns * grid + self.theme.card_spacing) // 2)
        # The viewport gets a little slack: QListView wraps one column early at an exact fit.
        self.setViewportMargins(side, 0, max(0, side - self.theme.card_spacing - 16), 0)
        super().resizeEvent(event)
        self.margins_changed.emit(
            side + self.theme.card_spacing // 2
        )  # cards sit centred in their grid cells

    def keep_position(self, value: int) -> None:
        """Restore a scroll position after a model reset (catalog refreshed)."""
        self.doItemsLayout()
        self.verticalScrollBar().setValue(min(value, self.verticalScrollBar().maximum()))

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        painter = QPainter(self.viewport())
        # The wall fades out at the bottom edge: there is more below.
        rect = self.viewport().rect()
        if self.verticalScrollBar().value() < self.verticalScrollBar().maximum():
            fade = QLinearGradient(0, rect.bottom() - 110, 0, rect.bottom())
            clear = QColor(style.WALL)
            clear.setAlpha(0)
            fade.setColorAt(0.0, clear)
            fade.setColorAt(1.0, style.WALL)
            painter.fillRect(QRect(0, rect.bottom() - 110, rect.width(), 111), fade)
        if self.model() is not None and self.model().rowCount() == 0:
            painter.setPen(style.TEXT_SECONDARY)
            painter.setFont(self.theme.font("body"))
            painter.drawText(rect.adjusted(0, 0, 0, -200),
                             Qt.AlignmentFlag.AlignCenter, self.empty_text)  # fmt: skip

    def viewportEvent(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip:
            return True  # no tooltips on a public screen
        return super().viewportEvent(event)


class GalleryPage(QWidget):
    """The gallery with its heading."""

    def __init__(self, theme: style.Theme, model: GalleryModel, thumbnails: ThumbnailCache, parent=None):
        super().__init__(parent)
        self.theme = theme
        self.model = model
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 72, 0, 0)
        layout.setSpacing(0)

        heading = self.heading = QWidget()
        head = QVBoxLayout(heading)
        head.setContentsMargins(theme.page_margin, 0, theme.page_margin, 40)
        head.setSpacing(10)
        self.title = QLabel("Listen to the paintings")
        self.title.setFont(theme.font("display"))
        self.subtitle = QLabel()
        self.subtitle.setFont(theme.font("body"))
        self.subtitle.setStyleSheet(f"color: {style.TEXT_SECONDARY.name()};")
        self.now_playing = QLabel()
        self.now_playing.setFont(theme.font("body"))
        self.now_playing.setStyleSheet(f"color: {style.ACCENT.name()};")
        for label in (self.title, self.subtitle, self.now_playing):
            label.setWordWrap(True)  # a portrait screen or a large text scale: more lines
            head.addWidget(label)
        layout.addWidget(heading)

        self.view = GalleryView(theme, thumbnails)
        self.view.setModel(model)
        layout.addWidget(self.view, 1)
        model.modelReset.connect(self._update_subtitle)
        self.view.margins_changed.connect(self._align_heading)
        self._update_subtitle()

    # The heading's fonts, largest first: a short screen at a large text scale takes a
    # smaller set, so that the heading never leaves the paintings less than two thirds.
    HEADING_SETS = (("display", "body"), ("title", "body"), ("title", "small"))
    HEADING_SHARE = 1 / 3

    def resizeEvent(self, event) -> None:
        self._fit_heading(event.size())
        super().resizeEvent(event)

    def _fit_heading(self, page: QSize) -> None:
        margins = self.heading.layout().contentsMargins()
        width = page.width() - margins.left() - margins.right()
        for title_role, text_role in self.HEADING_SETS:
            self.title.setFont(self.theme.font(title_role))
            for label in (self.subtitle, self.now_playing):
                label.setFont(self.theme.font(text_role))
            if self.heading.layout().totalHeightForWidth(width) <= page.height() * self.HEADING_SHARE:
                break

    def set_room(self, room: RoomMusic | None) -> None:
        """Say whose music the room plays (empty while none does)."""
        self.now_playing.setText(heading_text(room))

    def _update_subtitle(self) -> None:
        n = self.model.rowCount()
        works = f"{n:,} work{'s' if n != 1 else ''}"
        self.subtitle.setText(f"Touch a painting to hear the music composed for it    ·    {works}")

    def _align_heading(self, left: int) -> None:
        """Line the heading up with the first column of cards."""
        # Its right edge stays at the page margin: with one narrow column of cards (a portrait
        # screen at a large text scale) the heading still has the width for its words.
        self.heading.layout().setContentsMargins(left, 0, self.theme.page_margin, 40)
        self._fit_heading(self.size())
