"""Quiet hours: times of day when the room plays softer (e.g. while the museum opens)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class QuietWindow:
    start: dt.time
    end: dt.time
    volume: float

    def contains(self, t: dt.time) -> bool:
        if self.start == self.end:
            return False  # an empty window
        if self.start < self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end  # the window crosses midnight


def _parse(hhmm: str) -> dt.time:
    hours, minutes = hhmm.split(":")
    return dt.time(int(hours), int(minutes))


class QuietSchedule:
    """The volume factor for a moment: the lowest of the quiet windows it falls in, else 1."""

    def __init__(self, quiet_hours) -> None:
        self.windows = [QuietWindow(_parse(q.start), _parse(q.end), q.volume) for q in quiet_hours]

    def factor_at(self, when: dt.datetime) -> float:
        t = when.time()
        levels = [w.volume for w in self.windows if w.contains(t)]
        return min(levels) if levels else 1.0

    def describe(self) -> list[str]:
        return [f"{w.start:%H:%M}-{w.end:%H:%M} at {w.volume:.0%}" for w in self.windows]
