"""Keeping a public screen a kiosk: no way out but the curator panel.

One application-wide event filter sees every input event before any widget does. It

- swallows the keys that would leave or rearrange the app (Escape, Alt+F4, Ctrl+Q/W, F11, ...:
  in kiosk mode the app needs no keyboard at all, so every key is swallowed),
- swallows context menus,
- reports every touch, click or key as activity (the idle timer that starts attract mode),
- and notices a long press in the top-left corner, the curators' way to the PIN pad.

Window-manager shortcuts (Alt+Tab, the desktop's own keys) are outside any application's
reach; on the exhibition PC the session runs only the kiosk (see docs/kiosk.md).
"""

from __future__ import annotations

from collections.abc import Callable

from PyQt6.QtCore import QEvent, QObject, QPoint, QRect, QTimer, pyqtSignal
from PyQt6.QtGui import QMouseEvent, QTouchEvent
from PyQt6.QtWidgets import QWidget

T = QEvent.Type
PRESS_TYPES = frozenset({T.MouseButtonPress, T.MouseButtonDblClick, T.TouchBegin, T.TabletPress})
RELEASE_TYPES = frozenset({T.MouseButtonRelease, T.TouchEnd, T.TouchCancel, T.TabletRelease})
MOVE_TYPES = frozenset({T.MouseMove, T.TouchUpdate, T.TabletMove})
KEY_TYPES = frozenset({T.KeyPress, T.KeyRelease, T.ShortcutOverride, T.Shortcut})
ACTIVITY_TYPES = PRESS_TYPES | RELEASE_TYPES | MOVE_TYPES | frozenset({T.KeyPress, T.Wheel})
WATCHED = ACTIVITY_TYPES | KEY_TYPES | frozenset({T.ContextMenu})


def _event_pos(event: QEvent) -> QPoint | None:
    if isinstance(event, QMouseEvent):
        return event.globalPosition().toPoint()
    if isinstance(event, QTouchEvent) and event.points():
        return event.points()[0].globalPosition().toPoint()
    return None


class KioskEventFilter(QObject):
    """Installed on the QApplication; see the module docstring."""

    activity = pyqtSignal()
    corner_long_press = pyqtSignal()

    def __init__(
        self,
        window: QWidget,
        *,
        locked: bool,
        long_press_seconds: float,
        corner_size: int = 140,
        on_press: Callable[[QEvent], bool] | None = None,
    ):
        super().__init__(window)
        self.window = window
        self.locked = locked
        self.corner_size = corner_size
        self.on_press = on_press  # returns True to consume a press (leaving attract mode)
        self._swallow_until_release = False
        self._press_at: QPoint | None = None
        self.long_press = QTimer(self)
        self.long_press.setSingleShot(True)
        self.long_press.setInterval(int(long_press_seconds * 1000))
        self.long_press.timeout.connect(self._long_press_fired)
        self.swallowed_keys = 0

    def corner_rect(self) -> QRect:
        top_left = self.window.mapToGlobal(QPoint(0, 0))
        return QRect(top_left.x(), top_left.y(), self.corner_size, self.corner_size)

    def eventFilter(self, obj: QObject | None, event: QEvent | None) -> bool:
        if event is None:  # Qt always passes one; its signature allows None
            return False
        t = event.type()
        if t not in WATCHED:
            return False
        if t == T.ContextMenu:
            return True
        if t in KEY_TYPES:
            return self._filter_key(event)
        if t in ACTIVITY_TYPES:
            self.activity.emit()
        if t in PRESS_TYPES:
            self._track_press(event)
            if self._swallow_until_release:
                return True
            if self.on_press is not None and self.on_press(event):
                self._swallow_until_release = True
                return True
        elif t in RELEASE_TYPES:
            self.long_press.stop()
            self._press_at = None
            if self._swallow_until_release:
                if not (isinstance(event, QMouseEvent) and event.buttons()):
                    self._swallow_until_release = False
                return True
        elif t in MOVE_TYPES:
            if self._swallow_until_release:
                return True
            pos = _event_pos(event)
            if (
                self._press_at is not None
                and pos is not None
                and (pos - self._press_at).manhattanLength() > 40
            ):
                self.long_press.stop()
                self._press_at = None
        return False

    def _filter_key(self, event: QEvent) -> bool:
        if self.locked:
            self.swallowed_keys += 1
            return True
        return False

    def _track_press(self, event: QEvent) -> None:
        pos = _event_pos(event)
        if pos is not None and self.corner_rect().contains(pos):
            self._press_at = pos
            self.long_press.start()

    def _long_press_fired(self) -> None:
        self._press_at = None
        self.corner_long_press.emit()
