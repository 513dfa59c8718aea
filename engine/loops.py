"""A clip's loop, and the loop marker that carries it in a WAV file (a ``smpl`` chunk).

Both engines make seamless loops (the default engine composes a whole number of bars; the
diffusion engine crossfades its tail into its head), so an engine clip's loop is the whole
clip: it comes round after exactly its length, on its bar grid. The loop travels with the
clip: in the store (``clips.loop_start``/``loop_end``) and in the WAV files ``art2mus
generate`` writes, as the sampler chunk (``smpl``) that samplers and editors read. The player
never shortens such a clip; only audio without a marker gets a seam (see
``installation/audio/prepare.py``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Loop:
    """Frames ``start`` (first of the loop) to ``end`` (one past the last) at the clip's rate."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"a loop needs 0 <= start < end, got {self.start}..{self.end}")

    @classmethod
    def whole(cls, frames: int) -> Loop:
        return cls(0, int(frames))

    @property
    def frames(self) -> int:
        return self.end - self.start

    def scaled(self, from_rate: int, to_rate: int) -> Loop:
        """The same loop at another sample rate (the points rounded to whole frames)."""
        if from_rate == to_rate:
            return self
        f = to_rate / from_rate
        return Loop(round(self.start * f), max(round(self.end * f), round(self.start * f) + 1))


class LoopMode(StrEnum):
    """How to loop audio whose loop is not given as a :class:`Loop`."""

    WHOLE = "whole"  # made to loop as it is (an engine clip stored before loops were)
    FIND_SEAM = "find-seam"  # no marker: find the best loop point and crossfade a seam


# -- the WAV sampler chunk ------------------------------------------------------------------
_SMPL_HEADER = struct.Struct("<9I")  # manufacturer .. sampler data, 36 bytes
_SMPL_LOOP = struct.Struct("<6I")  # cue id, type, start, end (inclusive), fraction, play count


def smpl_chunk(loop: Loop, sample_rate: int) -> bytes:
    """A ``smpl`` chunk with one forward loop (its end frame is inclusive, as the format says)."""
    period_ns = round(1e9 / sample_rate)
    body = _SMPL_HEADER.pack(0, 0, period_ns, 60, 0, 0, 0, 1, 0)
    body += _SMPL_LOOP.pack(0, 0, loop.start, loop.end - 1, 0, 0)
    return b"smpl" + struct.pack("<I", len(body)) + body


def add_wav_loop(path: Path, loop: Loop, sample_rate: int) -> None:
    """Append a ``smpl`` chunk to the RIFF/WAVE file at ``path`` and fix the RIFF size."""
    chunk = smpl_chunk(loop, sample_rate)
    with open(path, "r+b") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError(f"{path}: not a RIFF/WAVE file")
        f.seek(0, 2)
        if f.tell() % 2:
            f.write(b"\0")  # chunks start on even offsets
        f.write(chunk)
        size = f.tell() - 8
        f.seek(4)
        f.write(struct.pack("<I", size))


def write_float_wav(path: Path, audio: Any, sample_rate: int, loop: Loop | None = None) -> None:
    """Write 32-bit float (frames, channels) or mono audio as a RIFF/WAVE file, with the
    ``smpl`` loop chunk when ``loop`` is given: byte for byte what ``scipy.io.wavfile.write``
    followed by :func:`add_wav_loop` writes (no time stamp: the same clip always gives the
    same file), in one pass and without importing scipy.io (0.2 s of start-up)."""
    import numpy as np

    data = np.ascontiguousarray(audio, dtype="<f4")
    channels = 1 if data.ndim == 1 else data.shape[1]
    fmt = struct.pack("<HHIIHH", 3, channels, sample_rate, sample_rate * 4 * channels, 4 * channels, 32)
    fmt += b"\x00\x00"  # cbSize: a non-PCM format chunk has 18 bytes
    header = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<II", 4, data.shape[0])
    header += b"data" + struct.pack("<I", data.nbytes)
    tail = smpl_chunk(loop, sample_rate) if loop is not None else b""
    size = 4 + len(header) + data.nbytes + len(tail)
    if size + 8 > 0xFFFFFFFF:
        raise ValueError(f"{path}: {data.nbytes} bytes of audio are too many for a WAV file")
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", size) + b"WAVE" + header)
        f.flush()
        data.tofile(f)  # straight from the array: no 11-MB copy
        f.write(tail)


def read_wav_loop(path: Path) -> Loop | None:
    """The first loop of a WAV file's ``smpl`` chunk, or None (no marker, or not a WAV)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            while True:
                header = f.read(8)
                if len(header) < 8:
                    return None
                name, size = header[:4], struct.unpack("<I", header[4:])[0]
                if name == b"smpl":
                    body = f.read(size)
                    if len(body) < _SMPL_HEADER.size + _SMPL_LOOP.size:
                        return None
                    if _SMPL_HEADER.unpack_from(body)[7] < 1:
                        return None
                    _, _, start, end, _, _ = _SMPL_LOOP.unpack_from(body, _SMPL_HEADER.size)
                    return Loop(start, end + 1) if end >= start else None
                f.seek(size + (size % 2), 1)
    except (OSError, ValueError, struct.error):
        return None
