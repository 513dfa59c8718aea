"""Reading audio files and in-memory audio (FLAC/WAV/OGG and the rest libsndfile knows)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from .prepare import ClipError


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    """Decode encoded audio bytes to float32 (frames, channels) and the sample rate."""
    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise ClipError(f"audio data ({len(data)} bytes) cannot be decoded: {exc}") from None
    if audio.shape[0] == 0:
        raise ClipError(f"audio data ({len(data)} bytes) holds no samples")
    return audio, int(rate)


def read_audio_file(path) -> tuple[np.ndarray, int]:
    """Read an audio file to float32 (frames, channels) and the sample rate."""
    path = Path(path)
    if not path.is_file():
        raise ClipError(f"{path}: file not found")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise ClipError(f"{path}: not a readable audio file ({exc})") from None
    if audio.shape[0] == 0:
        raise ClipError(f"{path}: the file holds no samples")
    return audio, int(rate)
