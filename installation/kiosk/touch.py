"""Finger scrolling for the kiosk's scrolled panels (the curator panel, a long label).

On a touchscreen a swipe scrolls them (``QScroller`` with the touch gesture). Without one
(development with a mouse, the offscreen tests) nothing is grabbed: the mouse wheel and the
scroll bar scroll, and a click on a button is never held back to see whether it becomes a
drag.
"""

from __future__ import annotations

from PyQt6.QtGui import QInputDevice
from PyQt6.QtWidgets import QScroller, QWidget


def has_touchscreen() -> bool:
    return any(d.type() == QInputDevice.DeviceType.TouchScreen for d in QInputDevice.devices())


def swipe_to_scroll(viewport: QWidget | None) -> None:
    if viewport is not None and has_touchscreen():
        QScroller.grabGesture(viewport, QScroller.ScrollerGestureType.TouchGesture)
