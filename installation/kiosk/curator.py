"""The curators' side: a PIN pad, then the panel where the installation is looked after.

The panel is the only way out of the kiosk (``Exit to desktop``). It opens after a long
press in the top-left corner (see ``lockdown.CornerPress``) and the PIN, checked against
``kiosk.pin_hash`` with :func:`engine.config.verify_pin`. Wrong PINs are rate-limited.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from PyQt6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QRect,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    QTimer,
    pyqtSignal,
)
from PyQt6.QtGui import QFontMetrics
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QBoxLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSlider,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from engine.config import verify_pin
from engine.store import ArtworkStatus, JobStatus

from . import style
from .artwork_view import painting_area
from .curator_words import describe_clip, low_resolution_note, status_text, technical_detail
from .flow import FlowRow
from .services import ArtworkEntry, KioskServices, MusicState
from .style import CELL_PADDING
from .touch import swipe_to_scroll

log = logging.getLogger(__name__)


class PinGuard:
    """Checks PINs and slows down guessing: after 3 wrong PINs, a lockout that doubles
    with each further wrong one (30 s, 60 s, ... up to 15 minutes)."""

    FREE_ATTEMPTS = 3
    FIRST_LOCKOUT = 30.0
    MAX_LOCKOUT = 900.0

    def __init__(self, pin_hash: str, clock: Callable[[], float] = time.monotonic):
        self.pin_hash = pin_hash
        self.clock = clock
        self.failures = 0
        self.locked_until = 0.0

    def seconds_locked(self) -> float:
        return max(0.0, self.locked_until - self.clock())

    def check(self, pin: str) -> tuple[bool, str]:
        """(accepted, message for the pad)."""
        wait = self.seconds_locked()
        if wait > 0:
            return False, f"Too many attempts. Try again in {int(wait + 0.999)} s."
        if verify_pin(pin, self.pin_hash):
            self.failures = 0
            return True, ""
        self.failures += 1
        extra = self.failures - self.FREE_ATTEMPTS
        if extra >= 0:
            lockout = min(self.MAX_LOCKOUT, self.FIRST_LOCKOUT * 2**extra)
            self.locked_until = self.clock() + lockout
            return False, f"Wrong PIN. Locked for {int(lockout)} s."
        return False, "Wrong PIN. Try again."


class PinPad(QWidget):
    """A large numeric keypad; the digits show as dots."""

    accepted = pyqtSignal()
    cancelled = pyqtSignal()

    def __init__(self, theme: style.Theme, guard: PinGuard, parent=None):
        super().__init__(parent)
        self.theme = theme
        self.guard = guard
        self.pin = ""
        # The keypad beside its heading on a landscape screen, below it on a portrait one;
        # the keys take the room there is (resizeEvent), never less than a fingertip.
        self.outer = QBoxLayout(QBoxLayout.Direction.LeftToRight, self)
        self.outer.setSpacing(theme.px(48))
        info = QWidget()
        col = QVBoxLayout(info)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(18)
        col.addStretch(1)
        heading = QLabel("Curator access")
        heading.setFont(theme.font("title"))
        heading.setAlignment(Qt.AlignmentFlag.AlignCenter)
        heading.setWordWrap(True)
        col.addWidget(heading)
        self.dots = QLabel()
        self.dots.setFont(theme.font("pin"))
        self.dots.setAlignment(Qt.AlignmentFlag.AlignCenter)
        col.addWidget(self.dots)
        self.message = QLabel("Enter the PIN")
        self.message.setFont(theme.font("small"))
        self.message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message.setWordWrap(True)
        self.message.setStyleSheet(f"color: {style.TEXT_SECONDARY.name()};")
        col.addWidget(self.message)
        cancel = QPushButton("Cancel")
        cancel.setProperty("quiet", True)
        cancel.setFont(theme.font("button"))
        cancel.clicked.connect(self.cancel)
        col.addWidget(cancel, 0, Qt.AlignmentFlag.AlignCenter)
        col.addStretch(1)
        self.cancel_button = cancel
        self.info = info
        keys = QWidget()
        grid = QGridLayout(keys)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(16)
        self.keys: dict[str, QPushButton] = {}
        labels = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "Clear", "0", "OK"]
        for i, label in enumerate(labels):
            button = QPushButton(label)
            button.setFont(theme.font("pin") if label.isdigit() else theme.font("button"))
            button.setStyleSheet("padding: 0;")
            if label == "OK":
                button.setProperty("accent", True)
            button.clicked.connect(lambda _=False, k=label: self.press(k))
            grid.addWidget(button, i // 3, i % 3)
            self.keys[label] = button
        self.keypad = keys
        self.outer.addStretch(1)
        self.outer.addWidget(info)
        self.outer.addWidget(keys, 0, Qt.AlignmentFlag.AlignCenter)
        self.outer.addStretch(1)
        self._size_keys(QSize(1920, 1080))
        self._refresh()

    def _size_keys(self, page: QSize) -> None:
        """Keys as large as the screen allows: at most 156x104 px (times the text scale)."""
        theme, gap = self.theme, 16
        margin = max(24, int(0.05 * min(page.width(), page.height())))
        self.outer.setContentsMargins(margin, margin, margin, margin)
        upright = page.height() > page.width()
        self.outer.setDirection(
            QBoxLayout.Direction.TopToBottom if upright else QBoxLayout.Direction.LeftToRight
        )
        if upright:
            width = page.width() - 2 * margin
            height = page.height() - 2 * margin - self.info.sizeHint().height() - self.outer.spacing()
        else:
            width = (page.width() - 2 * margin - self.outer.spacing()) // 2
            height = page.height() - 2 * margin
        self.info.setFixedWidth(max(theme.px(300), width) if not upright else width)
        key_w = max(theme.touch_min, min(theme.px(156), (width - 2 * gap) // 3))
        key_h = max(theme.touch_min, min(theme.px(104), (height - 3 * gap) // 4))
        for button in self.keys.values():
            button.setFixedSize(key_w, key_h)

    def resizeEvent(self, event) -> None:
        self._size_keys(event.size())
        super().resizeEvent(event)

    def reset(self) -> None:
        self.pin = ""
        wait = self.guard.seconds_locked()
        self.message.setText(
            f"Too many attempts. Try again in {int(wait + 0.999)} s." if wait else "Enter the PIN"
        )
        self._refresh()

    def press(self, key: str) -> None:
        if key == "Clear":
            self.pin = ""
        elif key == "OK":
            self.submit()
            return
        elif len(self.pin) < 12:
            self.pin += key
        self._refresh()

    def enter(self, pin: str) -> bool:
        """Type ``pin`` and press OK (tests); returns whether the panel opened."""
        for digit in pin:
            self.press(digit)
        return self.submit()

    def submit(self) -> bool:
        ok, message = self.guard.check(self.pin)
        self.pin = ""
        self._refresh()
        if ok:
            self.message.setText("Enter the PIN")
            self.accepted.emit()
        else:
            self.message.setText(message)
        return ok

    def cancel(self) -> None:
        self.pin = ""
        self._refresh()
        self.cancelled.emit()

    def _refresh(self) -> None:
        self.dots.setText("  ".join("●" for _ in self.pin) if self.pin else "·  ·  ·  ·")


# -- the panel ------------------------------------------------------------------------------

DEFAULT_PIN_NOTICE = (
    "Warning: the curator PIN is still the shipped default, so anyone who knows it can leave "
    "the kiosk. Set your own: art2mus config hash-pin, then kiosk.pin_hash in the configuration."
)


# The invalid index Qt passes for "no parent": the default of rowCount and columnCount.
_ROOT = QModelIndex()


class CuratorTableModel(QAbstractTableModel):
    COLUMNS = ("Title", "File", "Status")

    def __init__(self, parent=None):
        super().__init__(parent)
        self.entries: list[ArtworkEntry] = []
        # The painting view's room (width, height): images shown much enlarged are flagged.
        self.area: tuple[int, int] = (0, 0)

    def set_entries(self, entries: list[ArtworkEntry]) -> None:
        self.beginResetModel()
        self.entries = entries
        self.endResetModel()

    def rowCount(self, parent: QModelIndex = _ROOT) -> int:
        return 0 if parent.isValid() else len(self.entries)

    def columnCount(self, parent: QModelIndex = _ROOT) -> int:
        return len(self.COLUMNS)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or role != Qt.ItemDataRole.DisplayRole:
            return None
        e = self.entries[index.row()]
        return (e.display_title, e.path, status_text(e, self.area, short=True))[index.column()]

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.COLUMNS[section]
        return None


class _TaskSignals(QObject):
    done = pyqtSignal(object, object)  # result, exception


class _Task(QRunnable):
    def __init__(self, fn, signals):
        super().__init__()
        self.fn, self.signals = fn, signals

    def run(self) -> None:
        try:
            self.signals.done.emit(self.fn(), None)
        except Exception as exc:
            self.signals.done.emit(None, exc)


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _describe_scan(summary) -> str:
    parts = []
    for name in ("added", "updated", "renamed", "missing", "invalid", "unchanged"):
        n = getattr(summary, name, None)
        if n:
            parts.append(f"{n} {name}")
    return "Rescanned: " + (", ".join(parts) if parts else "no changes")


class QuietHoursEditor(QWidget):
    """Quiet hours for the running player: on/off, start, end and level, in big steps.

    Changes apply at once (the player ramps over ``audio.quiet_ramp_seconds``) and last until
    the kiosk restarts; the configuration's ``[[audio.quiet_hours]]`` is what persists.
    """

    STEP_MINUTES = 30

    def __init__(self, theme: style.Theme, services: KioskServices, parent=None):
        super().__init__(parent)
        self.theme = theme
        self.services = services
        self.toggle = self._button("Quiet hours: off", self._toggle)
        self.toggle.setText("Quiet hours: off ")  # sized for its longer text, then set
        self.fields: dict[str, QLabel] = {}
        groups: list[QWidget] = [self.toggle]
        for name, word in (("start", "from"), ("end", "to"), ("volume", "at")):
            group = QWidget()
            row = QHBoxLayout(group)
            row.setContentsMargins(0, 0, 0, 0)
            row.setSpacing(6)
            words = QLabel(word)
            words.setFont(theme.font("small"))
            words.setStyleSheet(f"color: {style.TEXT_SECONDARY.name()};")
            row.addWidget(words)
            row.addWidget(self._button("−", lambda n=name: self._step(n, -1), small=True))
            label = QLabel("00:00")
            label.setFont(theme.font("small"))
            label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            label.setMinimumWidth(label.sizeHint().width() + 12)
            self.fields[name] = label
            row.addWidget(label)
            row.addWidget(self._button("+", lambda n=name: self._step(n, +1), small=True))
            row.addStretch(1)
            groups.append(group)
        # All in one row on a wide screen, wrapped into more on a narrow one.
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 8, 0, 0)
        layout.addWidget(FlowRow(groups, spacing=20))
        self.start, self.end, self.level, self.enabled = 9 * 60, 10 * 60, 0.5, False

    def _button(self, text, slot, small=False) -> QPushButton:
        b = QPushButton(text)
        b.setFont(self.theme.font("button"))
        b.setMinimumHeight(self.theme.touch_min - 8)
        if small:
            b.setFixedSize(self.theme.touch_min - 8, self.theme.touch_min - 8)
            b.setStyleSheet("padding: 0;")
        b.clicked.connect(lambda _=False: slot())
        return b

    def load(self) -> None:
        hours = self.services.quiet_hours
        self.enabled = bool(hours)
        if hours:
            first = hours[0]
            self.start, self.end = _minutes(first.start), _minutes(first.end)
            self.level = first.volume
        self._show()

    def _toggle(self) -> None:
        self.enabled = not self.enabled
        self._apply()

    def _step(self, name: str, direction: int) -> None:
        if name == "volume":
            self.level = min(1.0, max(0.0, round(self.level + 0.1 * direction, 2)))
        elif name == "start":
            self.start = (self.start + direction * self.STEP_MINUTES) % (24 * 60)
        else:
            self.end = (self.end + direction * self.STEP_MINUTES) % (24 * 60)
        self.enabled = True
        self._apply()

    def _apply(self) -> None:
        from engine.config import QuietHours

        hours = list(self.services.quiet_hours[1:])  # further windows from the config stay
        if self.enabled:
            hours.insert(0, QuietHours(start=_hhmm(self.start), end=_hhmm(self.end), volume=self.level))
        self.services.set_quiet_hours(hours)
        self._show()

    def _show(self) -> None:
        self.toggle.setText("Quiet hours: on" if self.enabled else "Quiet hours: off")
        self.fields["start"].setText(_hhmm(self.start))
        self.fields["end"].setText(_hhmm(self.end))
        self.fields["volume"].setText(f"{round(self.level * 100)} %")
        for label in self.fields.values():
            label.setStyleSheet(f"color: {(style.TEXT if self.enabled else style.TEXT_SECONDARY).name()};")


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class CuratorPanel(QWidget):
    closed = pyqtSignal()
    exit_requested = pyqtSignal()
    audition_requested = pyqtSignal(object)  # ClipInfo

    def __init__(
        self,
        theme: style.Theme,
        services: KioskServices,
        parent=None,
        *,
        default_pin: Callable[[], bool] | None = None,
    ):
        super().__init__(parent)
        self.theme = theme
        self.services = services
        # Whether the curator PIN is still the shipped default (asked when the panel opens).
        self.default_pin = default_pin or (lambda: False)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._signals = _TaskSignals()
        self._signals.done.connect(self._task_done)
        self._after: Callable | None = None

        # The panel scrolls when the screen is too small for it (1366x768 at a large text
        # scale); its rows wrap and its columns stack on narrow and portrait screens.
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        self.page_scroll = QScrollArea()
        self.page_scroll.setWidgetResizable(True)
        self.page_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.page_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        swipe_to_scroll(self.page_scroll.viewport())
        outer.addWidget(self.page_scroll)
        content = QWidget()
        self.page_scroll.setWidget(content)
        page = QVBoxLayout(content)
        page.setContentsMargins(theme.page_margin, 40, theme.page_margin, 32)
        page.setSpacing(18)

        # Header: title, then the actions that affect the whole installation.
        self.header = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        self.header.setSpacing(24)
        self.title = QLabel("Curator panel")
        self.title.setFont(theme.font("title"))
        self.header.addWidget(self.title, 1)
        self.rescan_button = self._button("Rescan folder", self.rescan)
        self.close_button = self._button("Back to the gallery", self.closed.emit, accent=True)
        self.exit_button = self._button("Exit to desktop", self._confirm_exit)
        self.header_buttons = FlowRow([self.rescan_button, self.close_button, self.exit_button])
        self.header.addWidget(self.header_buttons)
        page.addLayout(self.header)
        # Said plainly, at the top, while the shipped PIN opens this panel: anyone who has read
        # the documentation can leave the kiosk.
        self.pin_warning = self._text("small", style.WARNING, DEFAULT_PIN_NOTICE)
        self.pin_warning.setVisible(False)
        page.addWidget(self.pin_warning)
        self.summary = self._text("small", style.TEXT_SECONDARY)
        page.addWidget(self.summary)
        # The collection's metadata problems (catalog.csv/json, sidecars), with file and line.
        self.problems_text = self._text("small", style.WARNING)
        page.addWidget(self.problems_text)
        self.problems_button = self._button("Show all", self._toggle_problems)
        page.addWidget(self.problems_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.show_all_problems = False
        self.problems: list = []

        # Middle: every artwork with its status; the selected one's clips beside it (below it
        # on a narrow screen).
        self.middle = QBoxLayout(QBoxLayout.Direction.LeftToRight)
        self.middle.setSpacing(32)
        self.table_model = CuratorTableModel(self)
        self.table = QTableView()
        self.table.setModel(self.table_model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(theme.px(52))
        self.table.setShowGrid(False)
        self.table.setFont(theme.font("small"))
        self.table.horizontalHeader().setFont(theme.font("label"))
        self.table.setWordWrap(True)  # rows grow to show their whole status
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)  # a long title or file name
        head = self.table.horizontalHeader()
        head.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        head.setSectionResizeMode(1, QHeaderView.ResizeMode.Interactive)
        head.setStretchLastSection(True)
        head.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.table.verticalScrollBar().setSingleStep(theme.px(24))
        self.table.setMinimumHeight(theme.px(52) * 5)
        self.table.selectionModel().currentRowChanged.connect(lambda *_: self._show_selected())
        self.middle.addWidget(self.table, 5)

        side = QVBoxLayout()
        side.setSpacing(14)
        self.selected_title = self._text("card-title", style.TEXT)
        self.selected_status = self._text("small", style.TEXT_SECONDARY)
        side.addWidget(self.selected_title)
        side.addWidget(self.selected_status)
        side.addWidget(self._text("label", style.TEXT_SECONDARY, "Generated clips"))
        self.clip_list = QListWidget()
        self.clip_list.setFont(theme.font("small"))
        self.clip_list.setWordWrap(True)
        self.clip_list.setMinimumHeight(theme.px(52) * 2)
        self.clip_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.clip_list.currentRowChanged.connect(lambda _row: self._update_actions())
        side.addWidget(self.clip_list, 1)
        self.clip_message = self._text("small", style.ACCENT)
        side.addWidget(self.clip_message)
        self.audition_button = self._button("Audition", self.audition)
        self.choose_button = self._button("Use this clip", self.choose)
        self.regenerate_button = self._button("Regenerate", self.regenerate)
        self.undo_button = self._button("Undo", self.undo)
        for b in (self.audition_button, self.choose_button, self.regenerate_button, self.undo_button):
            b.setStyleSheet("padding: 14px 16px;")  # four in a row beside the table
        side.addWidget(
            FlowRow([self.audition_button, self.choose_button, self.regenerate_button, self.undo_button])
        )
        # The one choice that can be taken back: (artwork id, the clip chosen before).
        self.last_choice: tuple[int, int] | None = None
        self._shown_id: int | None = None  # the artwork whose clips are listed
        self.middle.addLayout(side, 4)
        page.addLayout(self.middle, 1)

        # Bottom: engine, audio output, volume and quiet hours, side by side while they fit.
        self.engine_text = self._text("small", style.TEXT)
        self.telemetry_text = self._text("small", style.TEXT)
        self.volume = QSlider(Qt.Orientation.Horizontal)
        self.volume.setRange(0, 100)
        self.volume.setMinimumWidth(theme.px(200))
        self.volume.setMinimumHeight(theme.touch_min)
        self.volume_value = self._text("small", style.TEXT)
        self.volume.valueChanged.connect(self._volume_changed)
        volume = QWidget()
        volume_row = QHBoxLayout(volume)
        volume_row.setContentsMargins(0, 0, 0, 0)
        volume_row.addWidget(self.volume, 1)
        volume_row.addWidget(self.volume_value)
        self.quiet = QuietHoursEditor(self.theme, self.services)
        boxes = [
            self._box("Engine", self.engine_text),
            self._box("Audio output", self.telemetry_text),
            self._box("Volume and quiet hours", volume),
        ]
        page.addWidget(FlowRow(boxes, spacing=40, item_width=theme.px(480)))
        page.addWidget(self.quiet)  # the whole width: one row on a wide screen

        self.exit_confirm = False
        self.timer = QTimer(self)
        self.timer.setInterval(1000)
        self.timer.timeout.connect(self.refresh_status)

    # -- helpers ---------------------------------------------------------------------------
    def _box(self, heading: str, *body: QWidget) -> QWidget:
        box = QWidget()
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(8)
        column.addWidget(self._text("label", style.TEXT_SECONDARY, heading))
        for part in body:
            column.addWidget(part)
        column.addStretch(1)
        return box

    def _button(self, text: str, slot, *, accent: bool = False) -> QPushButton:
        button = QPushButton(text)
        button.setFont(self.theme.font("button"))
        button.setMinimumHeight(self.theme.touch_min)
        if accent:
            button.setProperty("accent", True)
        button.clicked.connect(lambda _=False: slot())
        return button

    def _text(self, role: str, colour, text: str = "") -> QLabel:
        label = QLabel(text)
        label.setFont(self.theme.font(role))
        label.setWordWrap(True)
        label.setStyleSheet(f"color: {colour.name()};")
        return label

    def _run(self, fn, after: Callable) -> None:
        self._after = after
        self.pool.start(_Task(fn, self._signals))

    def _task_done(self, result, exc) -> None:
        after, self._after = self._after, None
        if after is not None:
            after(result, exc)

    # -- showing ---------------------------------------------------------------------------
    def open(self, volume: float) -> None:
        self.exit_confirm = False
        self.exit_button.setText("Exit to desktop")
        self.volume.blockSignals(True)
        self.volume.setValue(round(volume * 100))
        self.volume.blockSignals(False)
        self.volume_value.setText(f"{round(volume * 100)} %")
        info = self.services.engine_info
        self.engine_text.setText(f"{info.name}: {info.reason}")
        self.pin_warning.setVisible(bool(self.default_pin()))
        self.quiet.load()
        self.reload()
        self.table.scrollToTop()  # problems first: the curator starts at the top
        if self.table_model.entries:
            self.table.selectRow(0)
        self.timer.start()

    def hideEvent(self, event) -> None:
        self.timer.stop()
        super().hideEvent(event)

    def reload(self) -> None:
        current = self.current_entry()
        entries = self.services.entries(include_unavailable=True)
        # Problems first, so a curator sees at once what needs attention.
        rank: dict[str, int] = {ArtworkStatus.INVALID: 0, ArtworkStatus.MISSING: 2, ArtworkStatus.READY: 1}
        music_rank = {
            MusicState.FAILED: 0,
            MusicState.COMPOSING: 1,
            MusicState.WAITING: 2,
            MusicState.READY: 3,
        }
        area = painting_area(self.theme, self.window().size())  # the screen the painting fills
        self.table_model.area = area

        def order(e: ArtworkEntry) -> tuple:
            low_res = bool(low_resolution_note(e, area))
            return (
                rank.get(e.status, 1),
                music_rank[e.music] - (0.5 if low_res else 0),
                e.display_title.lower(),
            )

        entries.sort(key=order)
        self.table_model.set_entries(entries)
        self._show_problems()
        self._fit_rows()
        row = 0
        if current is not None:
            row = next((i for i, e in enumerate(entries) if e.id == current.id), 0)
        if entries:
            self.table.selectRow(row)
        self._show_selected()
        self.refresh_status()

    def _fit_rows(self) -> None:
        """Each row as tall as its status needs at the column's width (the first 500 rows:
        problems come first, and a table of thousands stays quick to refresh)."""
        # Measured here rather than by resizeRowToContents: Qt's own estimate wraps the text
        # at the column's width without the cells' padding (style.py), and a line was lost.
        metrics = QFontMetrics(self.table.font())
        pad_x, pad_y = 2 * CELL_PADDING[1], 2 * CELL_PADDING[0]
        widths = {
            c: max(1, self.table.columnWidth(c) - pad_x)
            for c in range(self.table_model.columnCount())
            if not self.table.isColumnHidden(c)
        }
        floor = self.table.verticalHeader().defaultSectionSize()
        for i in range(min(500, len(self.table_model.entries))):
            height = floor
            for c, width in widths.items():
                text = str(self.table_model.data(self.table_model.index(i, c)) or "")
                box = metrics.boundingRect(QRect(0, 0, width, 100_000), Qt.TextFlag.TextWordWrap, text)
                height = max(height, box.height() + pad_y)
            self.table.setRowHeight(i, height)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        QTimer.singleShot(0, self._fit_rows)  # column widths are known once shown

    def resizeEvent(self, event) -> None:
        width = event.size().width() - 2 * self.theme.page_margin
        wide_header = self.title.sizeHint().width() + self.header_buttons.sizeHint().width() + 24 <= width
        self.header.setDirection(
            QBoxLayout.Direction.LeftToRight if wide_header else QBoxLayout.Direction.TopToBottom
        )
        # Table and clips side by side only where both get room for their words.
        side_by_side = width >= self.theme.px(1500) and event.size().width() > event.size().height()
        self.middle.setDirection(
            QBoxLayout.Direction.LeftToRight if side_by_side else QBoxLayout.Direction.TopToBottom
        )
        # The table keeps a good share of the screen even when the panel has to scroll: a
        # curator reads several rows at once (the panel scrolls for the rest).
        share = 0.4 if side_by_side else 0.6
        self.table.setMinimumHeight(max(self.theme.px(52) * 3, int(share * event.size().height())))
        super().resizeEvent(event)
        QTimer.singleShot(0, self._fit_columns)  # once the layouts have the new widths

    def _fit_columns(self) -> None:
        """Title and file take what they need up to a share of the table; the status (the
        column a curator acts on) has the rest, at least 40 %."""
        width = self.table.viewport().width()
        # A narrow table leaves out the file column (the selected artwork's file is said
        # beside the table), so title and status keep room for their words.
        narrow = width < self.theme.px(900)
        self.table.setColumnHidden(1, narrow)
        self.table.setColumnWidth(0, int(width * (0.42 if narrow else 0.32)))
        self.table.setColumnWidth(1, int(width * 0.24))
        self._fit_rows()

    def _show_problems(self) -> None:
        """The metadata problems: the first three, or all of them on demand."""
        self.problems = self.services.catalog_problems()
        n = len(self.problems)
        lines = [f"⚠ {p.file}{',' if p.line is not None else ':'} {p.reason}" for p in self.problems]
        if n > 3 and not self.show_all_problems:
            lines = [*lines[:3], f"… and {n - 3} more"]
        heading = f"{n} problem{'s' if n != 1 else ''} in the collection's metadata files:"
        self.problems_text.setText("\n".join([heading, *lines]) if n else "")
        self.problems_text.setVisible(bool(n))
        self.problems_button.setVisible(n > 3)
        self.problems_button.setText("Show fewer" if self.show_all_problems else f"Show all {n}")

    def _toggle_problems(self) -> None:
        self.show_all_problems = not self.show_all_problems
        self._show_problems()

    def current_entry(self) -> ArtworkEntry | None:
        index = self.table.currentIndex()
        if not index.isValid() or index.row() >= len(self.table_model.entries):
            return None
        return self.table_model.entries[index.row()]

    def _show_selected(self) -> None:
        entry = self.current_entry()
        # A refresh of the store must not move the curator's choice of clip.
        previous = self.selected_clip()
        keep = (
            previous.id
            if previous is not None and entry is not None and previous.artwork_id == entry.id
            else None
        )
        self.clip_list.clear()
        if entry is None or entry.id != self._shown_id:
            self.clip_message.setText("")  # it spoke of another artwork
        self._shown_id = entry.id if entry is not None else None
        if entry is None:
            self.selected_title.setText("No artworks yet")
            self.selected_status.setText("Add images to the collection folder, then rescan.")
            return
        self.selected_title.setText(entry.display_title)
        detail = technical_detail(entry)
        self.selected_status.setText(
            f"{entry.path}\n{status_text(entry, self.table_model.area)}"
            + (f"\nTechnical detail: {detail}" if detail and detail != status_text(entry) else "")
        )
        clips = self.services.candidates(entry.id)
        chosen = next((c for c in clips if c.chosen), None)
        for clip in clips:
            item = QListWidgetItem(describe_clip(clip, chosen))
            item.setData(Qt.ItemDataRole.UserRole, clip)
            self.clip_list.addItem(item)
        if self.clip_list.count():
            rows = [
                self.clip_list.item(i).data(Qt.ItemDataRole.UserRole).id
                for i in range(self.clip_list.count())
            ]
            self.clip_list.setCurrentRow(rows.index(keep) if keep in rows else 0)
        can_generate = entry.status == ArtworkStatus.READY
        self.regenerate_button.setEnabled(can_generate)
        self.audition_button.setEnabled(self.clip_list.count() > 0)
        self._update_actions()

    def _update_actions(self) -> None:
        """ "Use this clip" for a candidate that is not the chosen one; "Undo" after a choice."""
        clip = self.selected_clip()
        self.choose_button.setEnabled(clip is not None and not clip.chosen)
        entry = self.current_entry()
        undo = self.last_choice is not None and entry is not None and self.last_choice[0] == entry.id
        self.undo_button.setEnabled(undo)
        self.undo_button.setToolTip(
            f"Back to clip {self.last_choice[1]}" if undo and self.last_choice else ""
        )

    def refresh_status(self) -> None:
        entries = self.table_model.entries
        counts = dict.fromkeys(("artworks", "ready", "composing", "failed", "invalid"), 0)
        for e in entries:
            if e.status == ArtworkStatus.INVALID:
                counts["invalid"] += 1
                continue
            if e.status != ArtworkStatus.READY:
                continue
            counts["artworks"] += 1
            if e.music == MusicState.READY:
                counts["ready"] += 1
            elif e.music == MusicState.FAILED:
                counts["failed"] += 1
            else:
                counts["composing"] += 1
        jobs = self.services.job_counts()
        self.summary.setText(
            f"{counts['artworks']} artworks  ·  {counts['ready']} with music  ·  "
            f"{counts['composing']} waiting or generating  ·  {counts['failed']} failed  ·  "
            f"{_plural(counts['invalid'], 'invalid file')}  ·  jobs: {jobs.get(JobStatus.QUEUED, 0)} queued, "
            f"{jobs.get(JobStatus.RUNNING, 0)} running, {jobs.get(JobStatus.FAILED, 0)} failed"
        )
        t = self.services.telemetry()
        if "error" in t and len(t) == 1:
            self.telemetry_text.setText(f"✕ {t['error']}")
            return
        load = t.get("callback_load")
        lines = [str(t["status"])] if t.get("status") else []
        lines += [
            f"{t.get('device', '?')} · {t.get('sample_rate', '?')} Hz",
            f"underruns {t.get('underruns', 0)} · restarts {t.get('restarts', 0)}"
            + (f" · callback load {100 * load:.0f} %" if isinstance(load, (int, float)) else ""),
        ]
        self.telemetry_text.setText("\n".join(lines))

    # -- actions ---------------------------------------------------------------------------
    def selected_clip(self):
        item = self.clip_list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item is not None else None

    def audition(self) -> None:
        clip = self.selected_clip()
        if clip is not None:
            self.audition_requested.emit(clip)

    def choose(self) -> None:
        """Make the selected candidate the one visitors hear (one undo takes it back)."""
        clip = self.selected_clip()
        entry = self.current_entry()
        if clip is None or entry is None or clip.chosen:
            return
        before = next((c for c in self.services.candidates(entry.id) if c.chosen), None)
        self.services.choose(clip.id)
        self.last_choice = (entry.id, before.id) if before is not None else None
        back = f" Undo goes back to clip {before.id}." if before is not None else ""
        self.clip_message.setText(f"Visitors now hear clip {clip.id}.{back}")
        self._show_selected()

    def undo(self) -> None:
        entry = self.current_entry()
        if self.last_choice is None or entry is None or self.last_choice[0] != entry.id:
            return
        _, previous = self.last_choice
        self.last_choice = None
        self.services.choose(previous)
        self.clip_message.setText(f"Back to clip {previous}: visitors hear it again.")
        self._show_selected()

    def regenerate(self) -> None:
        """Ask for new candidates; they appear beside the chosen clip, which plays on."""
        entry = self.current_entry()
        if entry is None:
            return
        self.services.regenerate(entry.id)
        self.clip_message.setText(
            "Composing new candidates… They will appear in this list; the chosen clip keeps "
            "playing until you choose another."
        )
        self.reload()

    def rescan(self) -> None:
        self.rescan_button.setEnabled(False)
        self.rescan_button.setText("Rescanning…")

        def after(summary, exc) -> None:
            self.rescan_button.setEnabled(True)
            self.rescan_button.setText("Rescan folder")
            self.summary.setText(f"✕ Rescan failed: {exc}" if exc else _describe_scan(summary))
            if exc is None:
                self.reload()

        self._run(self.services.rescan, after)

    def _volume_changed(self, value: int) -> None:
        self.volume_value.setText(f"{value} %")
        self.services.set_volume(value / 100)

    def _confirm_exit(self) -> None:
        # Two presses: a stray touch does not end the exhibition.
        if not self.exit_confirm:
            self.exit_confirm = True
            self.exit_button.setText("Press again to exit")
            QTimer.singleShot(5000, self._reset_exit)
            return
        self.exit_requested.emit()

    def _reset_exit(self) -> None:
        self.exit_confirm = False
        self.exit_button.setText("Exit to desktop")
