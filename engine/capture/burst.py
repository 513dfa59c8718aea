"""One shot, or the best of a short burst: detection, straightening and the quality checks.

A hand-held camera shakes; of the few frames around the moment the button was pressed, the
sharpest one that passes every check is the capture. When none passes, the refusal is that
of the frame that came closest (a painting found, the sharpest), so the person is told the
one thing to change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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


def best_shot(frames: Iterable[Frame], *, whole: bool = False) -> Shot:
    """The best of a burst: the sharpest good shot, else the most promising refused one."""
    shots = [assess(f, whole=whole) for f in frames]
    if not shots:
        raise ValueError("best_shot needs at least one frame")
    good = [s for s in shots if s.ok]
    if good:
        return max(good, key=lambda s: s.sharpness)
    return max(shots, key=lambda s: (s.detection is not None, s.sharpness))
