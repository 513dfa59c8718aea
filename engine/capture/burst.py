"""One shot, or the best of a short burst: detection, straightening and the quality checks.

A hand-held camera shakes; of the few frames around the moment the button was pressed, the
sharpest one that passes every check is the capture (ranked first by a quick measure, then
checked in that order). When none passes, the refusal is that
of the frame that came closest (a painting found, the sharpest), so the person is told the
one thing to change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2

from .detect import Detection, Frame, detect_painting, whole_frame
from .quality import Quality, Refusal, is_black, is_dark, measure


@dataclass(frozen=True)
class Shot:
    frame: Frame
    detection: Detection | None
    quality: Quality | None
    refusal: Refusal | None

    @property
    def ok(self) -> bool:
        return self.refusal is None

    @property
    def sharpness(self) -> float:
        return self.quality.sharpness if self.quality is not None else 0.0

    @property
    def reason(self) -> str:
        return self.refusal.message if self.refusal is not None else ""


def assess(frame: Frame, *, whole: bool = False) -> Shot:
    """Detect, straighten and check one frame. ``whole``: a manual capture of the whole frame
    (no detection; still refused when black, dark, glaring or blurred)."""
    if is_black(frame):
        return Shot(frame, None, None, Refusal.BLACK_FRAME)
    detection = whole_frame(frame) if whole else detect_painting(frame)
    if detection is None:
        # In the dark no outline shows: say what to fix first.
        return Shot(frame, None, None, Refusal.DARK if is_dark(frame) else Refusal.NO_PAINTING)
    quality = measure(detection.crop)
    return Shot(frame, detection, quality, quality.refusal)


def rough_sharpness(frame: Frame) -> float:
    """A quick ranking of a burst's frames: the variance of the Laplacian at 320 px wide
    (about a millisecond; comparable between frames of one scene, not between scenes)."""
    scale = 320 / frame.shape[1]
    small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
    return float(cv2.Laplacian(grey, cv2.CV_32F).var())


def best_shot(frames: Iterable[Frame], *, whole: bool = False) -> Shot:
    """The best of a burst: the first good shot in order of rough sharpness (the sharpest
    frame is nearly always the one), else the most promising refused one. Frames are
    assessed one by one, so a steady hand costs one full assessment, not one per frame."""
    ranked = sorted(frames, key=rough_sharpness, reverse=True)
    if not ranked:
        raise ValueError("best_shot needs at least one frame")
    shots = []
    for frame in ranked:
        shot = assess(frame, whole=whole)
        if shot.ok:
            return shot
        shots.append(shot)
    return max(shots, key=lambda s: (s.detection is not None, s.sharpness))
