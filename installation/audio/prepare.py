"""Clips made ready for the callback: decoded, resampled, cached under a memory budget.

Preparation runs on the caller's thread (a worker, never the audio thread): soxr resamples to
the stream's rate, channels are mapped to the stream's count, the result is a read-only
float32 C-contiguous array. An optional loop seam crossfades the clip's tail into its head so
that a clip that was not composed to loop still wraps around without a click.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import soxr

log = logging.getLogger(__name__)


class ClipError(ValueError):
    """Audio that cannot be played; the message names the clip and the problem."""


@dataclass(frozen=True, eq=False)
class PreparedClip:
    key: str
    samples: np.ndarray  # (frames, channels) float32, C-contiguous, read-only
    sample_rate: int
    source_rate: int

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
    loop_seam_seconds: float = 0.0,
) -> PreparedClip:
    """Resample ``audio`` ((frames,) or (frames, channels)) for a stream; see the module doc."""
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
    if rate != target_rate:
        audio = soxr.resample(audio, rate, target_rate, quality="HQ")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    seam = int(round(loop_seam_seconds * target_rate))
    if seam > 0 and audio.shape[0] > 4 * seam:
        audio = _loop_seam(audio, seam)
    audio.setflags(write=False)
    return PreparedClip(key=key, samples=audio, sample_rate=target_rate, source_rate=rate)


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


def _loop_seam(audio: np.ndarray, seam: int) -> np.ndarray:
    """Fold the last ``seam`` frames over the first ones (equal-power) so the loop is smooth.

    The result is ``seam`` frames shorter; its last frame is followed, when it wraps, by what
    originally followed it.
    """
    out = audio[:-seam].copy()
    t = (np.arange(seam, dtype=np.float32) + 0.5) / seam * np.float32(np.pi / 2)
    fade_in, fade_out = np.sin(t)[:, None], np.cos(t)[:, None]
    out[:seam] = audio[:seam] * fade_in + audio[-seam:] * fade_out
    return out


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
