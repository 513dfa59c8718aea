"""Does a page of the kiosk hold on this screen? No text cut off, no widget off the screen.

Used by tests/test_kiosk_layouts.py (every page at four screen sizes and three text scales)
and by scripts/kiosk_screenshots.py (which refuses to save a broken picture). The checks are
the ones a person looking at the screen would make:

- the window kept the size of the screen (a page that needs more forces it larger, and the
  bottom of the page is then off the screen);
- every visible widget lies inside the window;
- every label shows all its text: a wrapping label is tall enough for its lines at its
  width, a one-line label and a button are wide enough for their text;
- the curator table's visible rows are tall enough for their status at the column's width;
- attract mode's label stands inside the screen, beside or below a painting area that is
  still a fair share of it.
"""

from __future__ import annotations

from PyQt6.QtCore import QPoint, QRect, QRectF, QSize, QSizeF, Qt
from PyQt6.QtGui import QFontMetrics
from PyQt6.QtWidgets import QAbstractButton, QAbstractScrollArea, QLabel, QTableView, QWidget

from .style import CELL_PADDING

SLACK = 1  # pixels of rounding


def _inside_scroll_content(widget: QWidget, top: QWidget) -> bool:
    """Widgets scrolled inside a scroll area's viewport may lie outside it by design."""
    parent = widget.parentWidget()
    while parent is not None and parent is not top:
        grand = parent.parentWidget()
        if isinstance(grand, QAbstractScrollArea) and parent is grand.viewport():
            return True
        parent = grand
    return False


def _name(widget: QWidget) -> str:
    text = widget.text() if isinstance(widget, (QLabel, QAbstractButton)) else ""
    short = (text[:40] + "…") if len(text) > 40 else text
    return f"{type(widget).__name__}({short!r})" if text else type(widget).__name__


def widget_problems(window: QWidget, page: QWidget, screen: QSize) -> list[str]:
    problems = []
    if window.size() != screen:
        problems.append(f"the window is {window.width()}x{window.height()}, not the screen's "
                        f"{screen.width()}x{screen.height()} (a page needs more room)")  # fmt: skip
    bounds = QRect(QPoint(0, 0), screen)
    for widget in [page, *page.findChildren(QWidget)]:
        if not widget.isVisibleTo(window):
            continue
        rect = QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())
        # Scrolled content may lie above or below the screen (it scrolls there), never beside.
        scrolled = _inside_scroll_content(widget, page)
        inside = rect.left() >= 0 and rect.right() <= bounds.right() if scrolled else bounds.contains(rect)
        if widget.width() > 0 and widget.height() > 0 and not inside:
            problems.append(f"{_name(widget)} at {rect.getRect()} leaves the screen")
        problems += _text_problems(widget)
        if isinstance(widget, QTableView):
            problems += _table_problems(widget)
    return problems


def _text_problems(widget: QWidget) -> list[str]:
    if isinstance(widget, QLabel) and widget.text() and widget.pixmap().isNull():
        margins = widget.contentsMargins()
        width = widget.width() - margins.left() - margins.right()
        if widget.wordWrap():
            needed = widget.heightForWidth(widget.width())
            if needed > widget.height() + SLACK:
                return [f"{_name(widget)} needs {needed} px of height, has {widget.height()}"]
            longest = max(QFontMetrics(widget.font()).horizontalAdvance(w) for w in widget.text().split())
            if longest > width + SLACK:
                return [f"{_name(widget)}: a word is {longest} px wide, the label {width}"]
        else:
            hint = widget.sizeHint()
            if hint.width() > widget.width() + SLACK or hint.height() > widget.height() + SLACK:
                return [
                    f"{_name(widget)} needs {hint.width()}x{hint.height()}, has {widget.width()}x{widget.height()}"
                ]
    if isinstance(widget, QAbstractButton) and widget.text():
        text_width = QFontMetrics(widget.font()).horizontalAdvance(widget.text())
        if text_width > widget.width() + SLACK:
            return [f"{_name(widget)}: its text is {text_width} px wide, the button {widget.width()}"]
    return []


def _table_problems(table: QTableView) -> list[str]:
    """Visible rows tall enough for their text (word-wrapped at the column's width)."""
    model = table.model()
    out = []
    metrics = QFontMetrics(table.font())
    viewport = table.viewport().rect()
    for row in range(model.rowCount()):
        top = table.rowViewportPosition(row)
        if top > viewport.bottom():
            break
        if top + table.rowHeight(row) < 0:
            continue
        for column in (model.columnCount() - 1,):  # the status (a title or file name is elided)
            if table.isColumnHidden(column):
                continue
            text = str(model.data(model.index(row, column)) or "")
            width = table.columnWidth(column) - 2 * CELL_PADDING[1]
            flags = Qt.TextFlag.TextWordWrap if table.wordWrap() else 0
            needed = metrics.boundingRect(QRect(0, 0, max(1, width), 10_000), flags, text).height()
            needed += 2 * CELL_PADDING[0]
            if needed > table.rowHeight(row) + SLACK:
                out.append(
                    f"table row {row}, column {column} needs {needed} px, has {table.rowHeight(row)}: {text[:40]!r}"
                )
    return out


def attract_problems(attract, entry, image_size: QSize, screen: QSize) -> list[str]:
    """The slide layout for one painting: label inside the screen, the painting still large."""
    from PyQt6.QtGui import QImage

    image = QImage(image_size, QImage.Format.Format_RGB32)
    layout = attract.layout_for(entry, image)
    label = attract.placed_label(entry, image)
    out = []
    bounds = QRectF(0, 0, screen.width(), screen.height())
    if not bounds.contains(label):
        out.append(f"attract label {label.getRect()} leaves the screen")
    if label.intersects(attract.shown_rect_of(entry, image)):
        out.append("attract label on the painting")
    if not bounds.contains(layout.area):
        out.append(f"attract painting area {layout.area.getRect()} leaves the screen")
    shown = QSizeF(image_size) * layout.scale
    if shown.height() < 0.3 * screen.height() and shown.width() < 0.3 * screen.width():
        out.append(f"attract shows the painting at only {shown.width():.0f}x{shown.height():.0f}")
    return out
