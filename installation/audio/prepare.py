"""Clips made ready for the callback: decoded, resampled, cached under a memory budget.

Preparation runs on the caller's thread (a worker, never the audio thread): soxr resamples to
the stream's rate, channels are mapped to the stream's count, the result is a read-only
float32 C-contiguous array. A clip carries its loop: an engine clip loops whole, exactly as
made (its length and bar grid kept; a whole loop is resampled as a periodic signal). Only
audio without a loop marker gets a seam: the loop point near its end that best matches its
start (by correlation), crossfaded with a gain law that keeps the level (``loop_with_seam``).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import soxr

from engine.loops import Loop, LoopMode

log = logging.getLogger(__name__)


class ClipError(ValueError):
    """Audio that cannot be played; the message names the clip and the problem."""


@dataclass(frozen=True, eq=False)
class PreparedClip:
    key: str
    samples: np.ndarray  # (frames, channels) float32, C-contiguous, read-only
    sample_rate: int
    source_rate: int
    # The loop the mixer plays (frames of ``samples``): it wraps from loop_end to loop_start.
    loop_start: int = 0
    loop_end: int = 0  # 0: the end of ``samples``

    def __post_init__(self) -> None:
        if self.loop_end <= 0:
            object.__setattr__(self, "loop_end", self.samples.shape[0])

    @property
    def frames(self) -> int:
        return self.samples.shape[0]

    @property
    def channels(self) -> int:
        return self.samples.shape[1]

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    @property
    def nbytes(self) -> int:
        return self.samples.nbytes


def prepare_samples(
    key: str,
    audio: np.ndarray,
    rate: int,
    *,
    target_rate: int,
    channels: int,
    loop: Loop | LoopMode = LoopMode.FIND_SEAM,
    loop_seam_seconds: float = 0.0,
) -> PreparedClip:
    """Resample ``audio`` ((frames,) or (frames, channels)) for a stream; see the module doc.

    ``loop`` is the clip's own loop (frames at ``rate``), ``LoopMode.WHOLE`` for audio made to
    loop as it is, or ``LoopMode.FIND_SEAM`` for audio without a marker: it gets a seam of
    ``loop_seam_seconds`` at its best-matching loop point (none when that is 0).
    """
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[0] == 0 or audio.shape[1] == 0:
        raise ClipError(f"clip {key!r}: expected (frames, channels) audio, got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        if np.issubdtype(audio.dtype, np.integer):
            audio = audio.astype(np.float32) / np.float32(np.iinfo(audio.dtype).max)
        else:
            raise ClipError(f"clip {key!r}: unsupported sample type {audio.dtype}")
    if rate <= 0:
        raise ClipError(f"clip {key!r}: invalid sample rate {rate}")
    audio = audio.astype(np.float32, copy=False)
    if not np.isfinite(audio).all():
        log.warning("clip %r: non-finite samples replaced by silence", key)
        audio = np.nan_to_num(audio, nan=0.0, posinf=0.0, neginf=0.0)
    audio = _map_channels(audio, channels)
    frames = audio.shape[0]
    if isinstance(loop, Loop) and (loop.end > frames):
        log.warning("clip %r: its loop %d..%d runs past its %d frames; looping it whole", key,
                    loop.start, loop.end, frames)  # fmt: skip
        loop = LoopMode.WHOLE
    whole = loop == LoopMode.WHOLE or (isinstance(loop, Loop) and loop == Loop.whole(frames))
    if rate != target_rate:
        audio = _resample_loop(audio, rate, target_rate) if whole else _resample(audio, rate, target_rate)
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if whole:
        target_loop = Loop.whole(audio.shape[0])
    elif isinstance(loop, Loop):
        target_loop = loop.scaled(rate, target_rate)
        if target_loop.end > audio.shape[0]:
            target_loop = Loop(min(target_loop.start, audio.shape[0] - 1), audio.shape[0])
    else:
        seam = int(round(loop_seam_seconds * target_rate))
        if seam > 0 and audio.shape[0] > 4 * seam:
            audio, target_loop = loop_with_seam(audio, seam)
        else:
            target_loop = Loop.whole(audio.shape[0])
    audio.setflags(write=False)
    return PreparedClip(
        key=key,
        samples=audio,
        sample_rate=target_rate,
        source_rate=rate,
        loop_start=target_loop.start,
        loop_end=target_loop.end,
    )


def _resample(audio: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    return soxr.resample(audio, rate, target_rate, quality="HQ")


def _resample_loop(audio: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Resample a clip that loops whole as the periodic signal it is: the filter sees the
    clip's end before its start and its start after its end, so the wrap stays seamless. The
    result has round(frames * target_rate / rate) frames: the loop keeps its length in time."""
    frames = audio.shape[0]
    pad = min(frames, max(1, rate // 10))  # 0.1 s either side: well past soxr's filter
    padded = np.concatenate([audio[-pad:], audio, audio[:pad]])
    out = soxr.resample(padded, rate, target_rate, quality="HQ")
    start = round(pad * target_rate / rate)
    length = round(frames * target_rate / rate)
    return out[start : start + length]


def _map_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    have = audio.shape[1]
    if have == channels:
        return audio
    if have == 1:
        return np.repeat(audio, channels, axis=1)
    if channels == 1:
        return audio.mean(axis=1, keepdims=True)
    if have > channels:
        return audio[:, :channels]
    # Fewer channels than the device: repeat the existing ones cyclically.
    return audio[:, [i % have for i in range(channels)]]


def find_loop_end(mono: np.ndarray, seam: int, search: int) -> tuple[int, float]:
    """The loop end ``L`` (frames) whose continuation ``mono[L:L+seam]`` best matches the
    start ``mono[:seam]`` (normalised correlation), searched over the last ``search`` frames
    before ``len - seam``; returns ``(L, correlation)``."""
    n = mono.shape[0]
    last = n - seam
    first = max(seam, last - search, n // 2)
    head = mono[:seam].astype(np.float64)
    region = mono[first : last + seam].astype(np.float64)
    size = 1 << int(np.ceil(np.log2(region.shape[0] + seam)))
    # Dot products of the head with every window of the region, by FFT.
    dots = np.fft.irfft(np.fft.rfft(region, size) * np.conj(np.fft.rfft(head, size)), size)
    dots = dots[: last - first + 1]
    energy = np.concatenate([[0.0], np.cumsum(region * region)])
    window = energy[seam : seam + dots.shape[0]] - energy[: dots.shape[0]]
    norm = np.sqrt(np.maximum(window, 1e-20) * max(float(head @ head), 1e-20))
    corr = dots / norm
    i = int(np.argmax(corr))
    return first + i, float(corr[i])


def loop_with_seam(audio: np.ndarray, seam: int) -> tuple[np.ndarray, Loop]:
    """Loop audio that has no loop marker: end it at the point (within its last seconds)
    whose continuation matches its start best, and crossfade that continuation into the start.

    The gains keep the level whatever the material: for two segments with correlation rho,
    linear gains ``1-t`` and ``t`` are divided by ``sqrt((1-t)^2 + t^2 + 2 rho t (1-t))``,
    which is equal power for unrelated sounds (rho = 0) and a plain linear fade for the same
    sound (rho = 1), where an equal-power fold would swell by 3 dB.
    """
    mono = audio.mean(axis=1)
    search = max(2 * seam, int(0.1 * audio.shape[0]))
    end, rho = find_loop_end(mono, seam, search)
    rho = min(max(rho, 0.0), 1.0)
    t = (np.arange(seam, dtype=np.float64) + 0.5) / seam
    a, b = 1.0 - t, t
    norm = np.sqrt(a * a + b * b + 2.0 * rho * a * b)
    fade_out, fade_in = (a / norm).astype(np.float32)[:, None], (b / norm).astype(np.float32)[:, None]
    out = audio[:end].copy()
    out[:seam] = audio[end : end + seam] * fade_out + audio[:seam] * fade_in
    return out, Loop.whole(end)


class ClipCache:
    """LRU cache of prepared clips within a byte budget; never evicts what is in use."""

    def __init__(self, budget_bytes: int, in_use: Callable[[], set] = set) -> None:
        self.budget_bytes = int(budget_bytes)
        self._in_use = in_use
        self._clips: collections.OrderedDict[str, PreparedClip] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0

    def get(self, key: str) -> PreparedClip | None:
        with self._lock:
            clip = self._clips.get(key)
            if clip is not None:
                self._clips.move_to_end(key)
            return clip

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._clips

    def put(self, clip: PreparedClip) -> None:
        with self._lock:
            old = self._clips.pop(clip.key, None)
            if old is not None:
                self.bytes -= old.nbytes
            self._clips[clip.key] = clip
            self.bytes += clip.nbytes
            self._evict()

    def clear(self) -> None:
        with self._lock:
            keep = self._in_use()
            for key in [k for k in self._clips if k not in keep]:
                self.bytes -= self._clips.pop(key).nbytes

    def __len__(self) -> int:
        return len(self._clips)

    def _evict(self) -> None:
        if self.bytes <= self.budget_bytes:
            return
        keep = self._in_use()
        for key in list(self._clips):
            if self.bytes <= self.budget_bytes:
                break
            if key in keep or key == next(reversed(self._clips)):
                continue  # playing, fading, or the clip just added
            self.bytes -= self._clips.pop(key).nbytes
        if self.bytes > self.budget_bytes:
            log.warning(
                "clip cache holds %.0f MB, over its %.0f MB budget: the clips in use need it",
                self.bytes / 2**20,
                self.budget_bytes / 2**20,
            )
