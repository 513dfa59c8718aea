"""Test signals whose continuity and level can be checked, and the measurements on them."""

from __future__ import annotations

import numpy as np

RATE = 48000
# Frequencies with a whole number of samples per period at 48 kHz (100, 80, 120, 60): a clip
# of whole periods loops without a seam, and 1200-sample windows hold whole periods of all.
F1, F2, F3, F4 = 480.0, 600.0, 400.0, 800.0
WINDOW = 1200


def sine(freq: float, seconds: float, amp: float = 0.5, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def amplitude(
    x: np.ndarray, freq: float, window: int = WINDOW, hop: int = WINDOW // 2, rate: int = RATE
) -> tuple[np.ndarray, np.ndarray]:
    """Amplitude of the ``freq`` component per window, and the window centres (seconds)."""
    starts = np.arange(0, len(x) - window + 1, hop)
    n = np.arange(window)
    amps = np.empty(len(starts))
    for i, s in enumerate(starts):
        t = (s + n) / rate
        seg = x[s : s + window]
        a = 2 / window * np.dot(seg, np.sin(2 * np.pi * freq * t))
        b = 2 / window * np.dot(seg, np.cos(2 * np.pi * freq * t))
        amps[i] = np.hypot(a, b)
    return amps, (starts + window / 2) / rate


def max_jump(x: np.ndarray) -> float:
    """Largest second difference: a click, gap or repeated block shows up here."""
    return float(np.abs(np.diff(x.astype(np.float64), 2)).max())


def sine_jump_limit(freq: float, amp: float, rate: int = RATE) -> float:
    """The largest second difference a clean sine of this frequency and amplitude has."""
    return amp * (2 * np.pi * freq / rate) ** 2


def first_crossing(values: np.ndarray, level: float, rising: bool = True) -> int:
    hits = np.nonzero(values >= level if rising else values <= level)[0]
    assert len(hits), f"never {'reached' if rising else 'fell to'} {level}"
    return int(hits[0])
