"""Audio finishing for engines that make linear (not loop-composed) audio: resampling,
folding the tail into the head for a seamless loop, mono to stereo.

numpy and soxr only (no torch). Loudness matching is the default engine's
``engine.engines.default.mastering.master`` (-18 LUFS, true peak <= -1 dBTP), shared by both
engines so a crossfade from one artwork to the next never jumps in level.
"""

from __future__ import annotations

import numpy as np


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample float32 audio (frames,) or (frames, channels) with soxr's high quality."""
    import soxr

    if rate_in == rate_out:
        return np.asarray(audio, dtype=np.float32)
    return soxr.resample(np.asarray(audio, dtype=np.float32), rate_in, rate_out, quality="HQ").astype(
        np.float32
    )


def crossfade_loop(audio: np.ndarray, sample_rate: int, seconds: float) -> np.ndarray:
    """Fold the last ``seconds`` into the start so the clip loops without a seam.

    The result is ``seconds`` shorter: it starts just after the crossfade region and ends with
    the tail fading out while the head fades in (equal power, for uncorrelated music), so
    playing it again from the start continues exactly where the fade-in left off.
    """
    n = int(round(seconds * sample_rate))
    if n <= 0:
        return np.asarray(audio, dtype=np.float32)
    if 2 * n > audio.shape[0]:
        raise ValueError(
            f"a {seconds:g}-s loop crossfade needs a clip of at least {2 * seconds:g} s; "
            f"got {audio.shape[0] / sample_rate:.2f} s"
        )
    phase = (np.arange(n, dtype=np.float64) + 0.5) / n * (np.pi / 2)
    fade_in, fade_out = np.sin(phase), np.cos(phase)
    if audio.ndim == 2:
        fade_in, fade_out = fade_in[:, None], fade_out[:, None]
    head, tail = audio[:n], audio[-n:]
    out = np.array(audio[n:], dtype=np.float64)
    out[-n:] = tail * fade_out + head * fade_in
    return out.astype(np.float32)


def to_stereo(audio: np.ndarray) -> np.ndarray:
    """(frames,) or (frames, 1) mono → (frames, 2)."""
    mono = audio.reshape(audio.shape[0], -1)[:, 0]
    return np.repeat(mono[:, None], 2, axis=1).astype(np.float32)
