"""The look of the kiosk: a dark gallery wall, light type, generous spacing.

Everything visual that is not layout lives here, so that ``kiosk.text_scale`` scales every
size in one place. Sizes are in device-independent pixels for a 1920x1080 wall screen; the
body type (26 px at scale 1) stays readable from about two metres. Contrast of the text on
the wall colour is above 12:1 (primary) and 7:1 (secondary), i.e. WCAG AAA.
"""

from __future__ import annotations

from dataclasses import dataclass

from PyQt6.QtGui import QColor, QFont, QFontDatabase

# Padding of a table cell (vertical, horizontal): the curator table measures rows with it.
CELL_PADDING = (8, 14)

# Preferred faces first; the DejaVu families ship with every Qt install we target.
SERIF_FAMILIES = ("EB Garamond", "DejaVu Serif")
SANS_FAMILIES = ("Inter", "DejaVu Sans")

WALL = QColor("#141311")  # the gallery wall: near-black, slightly warm
MAT = QColor("#1d1c19")  # the card behind each thumbnail, like a passe-partout
MAT_PRESSED = QColor("#2a2824")
RULE = QColor("#3b3833")  # hairlines and the quiet music visual
TEXT = QColor("#f3efe7")  # primary text, warm white (contrast ~16:1 on WALL)
TEXT_SECONDARY = QColor("#bdb6aa")  # artist, year, hints (contrast ~9:1 on WALL)
ACCENT = QColor("#d8c49a")  # brass: the playing artwork, the curator's active controls
WARNING = QColor("#e8a98f")  # curator panel only, always beside a text and an icon shape


def _first_available(families: tuple[str, ...]) -> str:
    installed = set(QFontDatabase.families())
    for family in families:
        if family in installed:
            return family
    return families[-1]


@dataclass
class Theme:
    """Fonts and sizes for one text scale (``kiosk.text_scale``)."""

    text_scale: float = 1.0

    def __post_init__(self) -> None:
        self.serif = _first_available(SERIF_FAMILIES)
        self.sans = _first_available(SANS_FAMILIES)

    # -- sizes -----------------------------------------------------------------------------
    def px(self, value: float) -> int:
        """A text-related size scaled by ``text_scale``."""
        return max(1, round(value * self.text_scale))

    def font(self, role: str) -> QFont:
        family, size, weight, italic = {
            "display": (self.serif, 64, QFont.Weight.Normal, False),
            "title": (self.serif, 46, QFont.Weight.Normal, False),
            "card-title": (self.serif, 30, QFont.Weight.Medium, False),
            "caption": (self.serif, 30, QFont.Weight.Normal, True),
            "body": (self.sans, 24, QFont.Weight.Light, False),
            "meta": (self.sans, 23, QFont.Weight.Normal, False),
            "label": (self.sans, 23, QFont.Weight.DemiBold, False),
            "button": (self.sans, 24, QFont.Weight.Medium, False),
            "small": (self.sans, 24, QFont.Weight.Normal, False),
            "pin": (self.sans, 40, QFont.Weight.Light, False),
        }[role]
        font = QFont(family)
        font.setPixelSize(self.px(size))
        font.setWeight(weight)
        font.setItalic(italic)
        if role == "label":
            font.setCapitalization(QFont.Capitalization.AllUppercase)
            font.setLetterSpacing(QFont.SpacingType.PercentageSpacing, 112)
        font.setHintingPreference(QFont.HintingPreference.PreferNoHinting)
        return font

    # Gallery cards: the thumbnail area plus three lines of text.
    @property
    def card_width(self) -> int:
        return round(380 * max(1.0, self.text_scale**0.5))

    @property
    def card_image_height(self) -> int:
        return round(self.card_width * 0.78)

    @property
    def card_height(self) -> int:
        # mat, gap, title, artist line, gap, status line (line heights ~1.3 x pixel size)
        return round(self.card_image_height + 22 + 1.3 * (self.px(30) + self.px(23) + self.px(24)) + 12)

    card_spacing: int = 48
    page_margin: int = 88
    touch_min: int = 72  # no touch target smaller than this (the guideline is 48 at 96 dpi)

    # -- style sheet for the standard widgets ----------------------------------------------
    def stylesheet(self) -> str:
        return f"""
        QWidget {{ background: {WALL.name()}; color: {TEXT.name()}; }}
        QLabel {{ background: transparent; }}
        QPushButton {{ background: {MAT.name()}; color: {TEXT.name()};
                       border: 1px solid {RULE.name()}; border-radius: 6px;
                       padding: 14px 28px; min-height: {self.touch_min - 30}px; }}
        QPushButton:pressed {{ background: {MAT_PRESSED.name()}; }}
        QPushButton:disabled {{ color: #6f6a61; border-color: #2a2824; }}
        QPushButton[quiet="true"] {{ background: transparent; border: none;
                                     color: {TEXT_SECONDARY.name()}; padding: 14px 8px; }}
        QPushButton[accent="true"] {{ border: 1px solid {ACCENT.name()};
                                      color: {ACCENT.name()}; }}
        QScrollBar:vertical {{ background: transparent; width: 10px; margin: 0; }}
        QScrollBar::handle:vertical {{ background: {RULE.name()}; border-radius: 5px;
                                       min-height: 60px; }}
        QScrollBar::add-line, QScrollBar::sub-line {{ height: 0; }}
        QScrollBar::add-page, QScrollBar::sub-page {{ background: transparent; }}
        QTableView {{ background: {WALL.name()}; alternate-background-color: #191816;
                      gridline-color: {RULE.name()}; border: 1px solid {RULE.name()};
                      selection-background-color: #3a362e; selection-color: {TEXT.name()}; }}
        QTableView::item {{ padding: {CELL_PADDING[0]}px {CELL_PADDING[1]}px; }}
        QHeaderView::section {{ background: {MAT.name()}; color: {TEXT_SECONDARY.name()};
                                border: none; border-bottom: 1px solid {RULE.name()};
                                padding: 10px; }}
        QListWidget {{ background: {WALL.name()}; border: 1px solid {RULE.name()}; }}
        QListWidget::item {{ padding: 12px; }}
        QListWidget::item:selected {{ background: #3a362e; color: {TEXT.name()}; }}
        QSlider::groove:horizontal {{ height: 6px; background: {RULE.name()}; border-radius: 3px; }}
        QSlider::handle:horizontal {{ background: {TEXT.name()}; width: 36px; height: 36px;
                                      margin: -15px 0; border-radius: 18px; }}
        QSlider::sub-page:horizontal {{ background: {ACCENT.name()}; border-radius: 3px; }}
        """
