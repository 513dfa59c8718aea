"""Is a straightened capture good enough to make music from, and if not, what should the
person holding the camera do?

Three checks on the straightened canvas (at most 512 px on its longer side, so that the
figures do not depend on how close the camera was), in the order a person fixes them:

- **dark**: the canvas's median grey level. Under ~35 of 255 the picture is mostly sensor noise.
- **glare**: the share of clipped pixels (all three channels at 245 or more). A painting is
  seldom pure white over a large area, while a reflection of a lamp on the varnish is.
- **blurred**: the no-reference blur measure of Crété-Roffet et al. (2007, "The blur effect:
  perception and estimation with a new no-reference perceptual blur metric"): how much of
  the image's local variation survives a further 9-pixel blur, the worse of the vertical
  and horizontal directions (motion blur smears one direction). It compares the image with
  itself, so it does not depend on how busy the painting is. On the test scenes
  (tests/capture_scenes.py) sharp shots measure 0.22-0.31 and shaken ones 0.40-0.52.

``sharpness`` is reported as 1 − blur (higher is sharper).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

# Thresholds (see the module docstring for the figures behind them).
MAX_BLUR = 0.36
MAX_GLARE_FRACTION = 0.02
MIN_MEDIAN_GREY = 35.0
CLIPPED_LEVEL = 245
QUALITY_SIDE = 512


class Refusal(StrEnum):
    """Why a shot was refused; the message says what to do about it."""

    NO_PAINTING = "no-painting"
    DARK = "dark"
    GLARE = "glare"
    BLURRED = "blurred"
    BLACK_FRAME = "black-frame"

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    Refusal.NO_PAINTING: "no painting found: aim at the whole painting, frame and all, against the wall",
    Refusal.DARK: "too dark: turn on more light or step out of your own shadow",
    Refusal.GLARE: "too much glare: step to the side",
    Refusal.BLURRED: "too blurred: hold still",
    Refusal.BLACK_FRAME: "the camera sends only black: is the lens covered?",
}


@dataclass(frozen=True)
class Quality:
    sharpness: float  # 1 - blur, 0..1
    median_grey: float
    glare_fraction: float

    @property
    def refusal(self) -> Refusal | None:
        if self.median_grey < MIN_MEDIAN_GREY:
            return Refusal.DARK
        if self.glare_fraction > MAX_GLARE_FRACTION:
            return Refusal.GLARE
        if 1.0 - self.sharpness > MAX_BLUR:
            return Refusal.BLURRED
        return None


def blur_measure(grey: np.ndarray) -> float:
    """Crété-Roffet blur, 0 (sharp) .. 1 (flat): the worse of the two directions."""
    image = grey.astype(np.float32)
    worst = 0.0
    for axis, kernel in ((0, np.full((9, 1), 1 / 9, np.float32)), (1, np.full((1, 9), 1 / 9, np.float32))):
        blurred = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)
        d_image = np.abs(np.diff(image, axis=axis))
        d_blurred = np.abs(np.diff(blurred, axis=axis))
        total = float(d_image.sum())
        if total <= 0:
            return 1.0  # a flat image: nothing sharp in it
        lost = float(np.maximum(0.0, d_image - d_blurred).sum())
        worst = max(worst, (total - lost) / total)
    return worst


def measure(crop: np.ndarray) -> Quality:
    """The quality figures of a straightened (BGR) canvas."""
    scale = min(1.0, QUALITY_SIDE / max(crop.shape[:2]))
    if scale < 1.0:
        crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    clipped = float((crop.min(axis=2) >= CLIPPED_LEVEL).mean())
    return Quality(1.0 - blur_measure(grey), float(np.median(grey[::2, ::2])), clipped)


def is_black(frame: np.ndarray) -> bool:
    """A frame a camera sends when its lens is covered or it is still waking up."""
    small = frame[::8, ::8]
    return float(np.percentile(small, 99)) < 12.0


def is_dark(frame: np.ndarray) -> bool:
    """A frame too dark as a whole to find anything in."""
    return float(np.median(frame[::8, ::8])) < MIN_MEDIAN_GREY
