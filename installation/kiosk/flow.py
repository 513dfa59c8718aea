"""A row of widgets that wraps onto more rows when the screen is too narrow for it.

The kiosk runs on wide and portrait screens at text scales up to 2: a row of buttons that
fits at 1920 px and scale 1 does not at 1080 px and scale 2. :class:`FlowRow` puts its
widgets in as many equal columns as fit its width (at least one), so nothing is pushed off
the screen and no button's text is cut.
"""

from __future__ import annotations

from PyQt6.QtCore import QSize
from PyQt6.QtWidgets import QGridLayout, QWidget


class FlowRow(QWidget):
    def __init__(
        self,
        widgets: list[QWidget],
        spacing: int = 12,
        parent: QWidget | None = None,
        *,
        item_width: int | None = None,
    ):
        super().__init__(parent)
        self.widgets = widgets
        self.item_width = item_width  # the columns' width; by default the widest widget's
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(spacing)
        self.columns = 0
        self._arrange(len(widgets))

    def _item_width(self) -> int:
        if self.item_width is not None:
            return self.item_width
        return max((w.sizeHint().width() for w in self.widgets if not w.isHidden()), default=0)

    def columns_for(self, width: int) -> int:
        item, gap = self._item_width(), self.grid.spacing()
        if item <= 0:
            return max(1, len(self.widgets))
        return max(1, min(len(self.widgets), (width + gap) // (item + gap)))

    def _arrange(self, columns: int) -> None:
        if columns == self.columns:
            return
        self.columns = columns
        for w in self.widgets:
            self.grid.removeWidget(w)
        for i, w in enumerate(self.widgets):
            self.grid.addWidget(w, i // columns, i % columns)
        for c in range(len(self.widgets)):
            self.grid.setColumnStretch(c, 1 if c < columns else 0)
        self.updateGeometry()

    def resizeEvent(self, event) -> None:
        width = event.size().width()
        self._arrange(self.columns_for(width))
        # Said as a minimum too: a scroll area's content then grows to hold every row.
        self.setMinimumHeight(self.heightForWidth(width))
        super().resizeEvent(event)

    def hasHeightForWidth(self) -> bool:
        return True

    def heightForWidth(self, width: int) -> int:
        columns = self.columns_for(width)
        if columns == self.columns and self.grid.hasHeightForWidth():
            return self.grid.heightForWidth(width)  # wrapping labels: the grid knows
        rows = -(-len(self.widgets) // columns)
        height = max(
            (max(w.sizeHint().height(), w.minimumSizeHint().height()) for w in self.widgets), default=0
        )
        return rows * height + (rows - 1) * self.grid.spacing()

    def minimumSizeHint(self) -> QSize:
        # As narrow as one widget can be: the row wraps rather than holding the page wide.
        narrowest = max((w.minimumSizeHint().width() for w in self.widgets if not w.isHidden()), default=0)
        return QSize(narrowest, self.heightForWidth(self.width() or self._item_width()))

    def sizeHint(self) -> QSize:
        n, gap = len(self.widgets), self.grid.spacing()
        return QSize(n * self._item_width() + (n - 1) * gap, self.heightForWidth(10_000))
