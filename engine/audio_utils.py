"""Audio finishing shared by the engines: resampling, loudness matching, seamless loops.

numpy, soxr and pyloudnorm only (no torch), so the default engine can use it as well. Every
engine hands the kiosk clips at the same loudness (-18 LUFS integrated, true peak at most
-1 dBFS), so a crossfade from one artwork to the next never jumps in level.
"""

from __future__ import annotations

import numpy as np

TARGET_LUFS = -18.0
TRUE_PEAK_DBFS = -1.0
# pyloudnorm's gating needs at least one 400 ms block.
_MIN_LOUDNESS_SECONDS = 0.4
_SILENCE_LUFS = -70.0


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample float32 audio (frames,) or (frames, channels) with soxr's high quality."""
    import soxr

    if rate_in == rate_out:
        return np.asarray(audio, dtype=np.float32)
    return soxr.resample(np.asarray(audio, dtype=np.float32), rate_in, rate_out, quality="HQ").astype(np.float32)


def true_peak_dbfs(audio: np.ndarray, sample_rate: int) -> float:
    """Peak level after 4x oversampling (ITU-R BS.1770 true peak, approximately), in dBFS."""
    oversampled = resample(audio, sample_rate, sample_rate * 4)
    peak = float(np.max(np.abs(oversampled))) if oversampled.size else 0.0
    return 20.0 * np.log10(peak) if peak > 0 else -np.inf


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS (-inf for silence or a clip too short to measure)."""
    import pyloudnorm

    if audio.shape[0] < int(_MIN_LOUDNESS_SECONDS * sample_rate):
        return -np.inf
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(np.asarray(audio, dtype=np.float64)))


def match_loudness(
    audio: np.ndarray,
    sample_rate: int,
    target_lufs: float = TARGET_LUFS,
    max_true_peak_dbfs: float = TRUE_PEAK_DBFS,
) -> tuple[np.ndarray, float]:
    """Scale to ``target_lufs``, then lower the gain if the true peak would exceed the ceiling.

    Only gain is applied (no limiter colours the music); a very peaky clip therefore ends up
    a little quieter than the target. Returns the audio and its final loudness in LUFS.
    Silence is returned unchanged.
    """
    loudness = integrated_loudness(audio, sample_rate)
    if not np.isfinite(loudness) or loudness < _SILENCE_LUFS:
        return np.asarray(audio, dtype=np.float32), loudness
    gain_db = target_lufs - loudness
    peak = true_peak_dbfs(audio, sample_rate) + gain_db
    if peak > max_true_peak_dbfs:
        gain_db -= peak - max_true_peak_dbfs
    out = (np.asarray(audio, dtype=np.float64) * 10.0 ** (gain_db / 20.0)).astype(np.float32)
    return out, loudness + gain_db


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
