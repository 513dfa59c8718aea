"""Loudness normalisation (ITU-R BS.1770-4) and a true-peak limiter for looping clips.

Every clip leaves the engine at -18 LUFS integrated with its true peak at or below -1 dBTP,
so the installation never jumps in level from one artwork to the next.

- Loudness: the BS.1770 K-weighting filters (the coefficients ``pyloudnorm``'s meter — the
  reference implementation the tests measure with — computes, by the same formulas; importing
  pyloudnorm would import scipy.signal, about 1 s of CPU), then 400-ms blocks with 75 % overlap and
  the absolute (-70 LUFS) and relative (-10 LU) gates. Written with cumulative sums so a
  30-s clip takes milliseconds rather than pyloudnorm's per-block Python loop.
- True peak: the signal reconstructed between samples at 4x oversampling with a windowed-sinc
  interpolator (as BS.1770 Annex 2 asks), evaluated only around samples within 6 dB of the
  ceiling: an inter-sample peak more than 6 dB above both neighbouring samples does not occur
  in band-limited music.
- Limiter: a look-ahead gain envelope (minimum filter, then a moving average of the same
  width, so the smoothed gain at a peak is never above what the peak needs). It runs
  circularly — the clip is a loop, so the envelope wraps across the seam without a click.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .kernels import sosfilt_rows_in_place

TARGET_LUFS = -18.0
CEILING_DBTP = -1.0
# Aim a little under the ceiling so that other true-peak meters (other interpolation
# filters) also read at or below -1 dBTP.
CEILING_MARGIN_DB = 0.2
OVERSAMPLE = 4
HALF_TAPS = 12
LIMITER_WINDOW_S = 0.008


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def gain_to_db(gain: float) -> float:
    return float(20.0 * np.log10(max(gain, 1e-12)))


@lru_cache(maxsize=8)
def _k_weighting_sos(rate: int) -> np.ndarray:
    """The two K-weighting biquads (high shelf +4 dB at 1.5 kHz, high pass at 38 Hz) as
    second-order sections, computed exactly as ``pyloudnorm.Meter(rate)._filters`` does
    (RBJ cookbook formulas, normalised by a0), so the numbers are the same to the bit."""
    sections = []
    for gain_db, q, fc, kind in ((4.0, 1 / np.sqrt(2), 1500.0, "high_shelf"), (0.0, 0.5, 38.0, "high_pass")):
        a_ = 10 ** (gain_db / 40.0)
        w0 = 2.0 * np.pi * (fc / rate)
        alpha = np.sin(w0) / (2.0 * q)
        if kind == "high_shelf":
            b0 = a_ * ((a_ + 1) + (a_ - 1) * np.cos(w0) + 2 * np.sqrt(a_) * alpha)
            b1 = -2 * a_ * ((a_ - 1) + (a_ + 1) * np.cos(w0))
            b2 = a_ * ((a_ + 1) + (a_ - 1) * np.cos(w0) - 2 * np.sqrt(a_) * alpha)
            a0 = (a_ + 1) - (a_ - 1) * np.cos(w0) + 2 * np.sqrt(a_) * alpha
            a1 = 2 * ((a_ - 1) - (a_ + 1) * np.cos(w0))
            a2 = (a_ + 1) - (a_ - 1) * np.cos(w0) - 2 * np.sqrt(a_) * alpha
        else:
            b0 = (1 + np.cos(w0)) / 2
            b1 = -(1 + np.cos(w0))
            b2 = (1 + np.cos(w0)) / 2
            a0 = 1 + alpha
            a1 = -2 * np.cos(w0)
            a2 = 1 - alpha
        b = np.array([b0, b1, b2]) / a0
        a = np.array([a0, a1, a2]) / a0
        sections.append(np.concatenate([np.asarray(b, float), np.asarray(a, float)]))
    return np.array(sections)


def integrated_loudness(audio: np.ndarray, rate: int) -> float:
    """Integrated loudness in LUFS of (frames, channels) audio (-inf for silence)."""
    x = np.asarray(audio, dtype=np.float32)
    planar = np.ascontiguousarray(x[None, :] if x.ndim == 1 else x.T)
    return _loudness_planar(planar, rate)


def _loudness_planar(x: np.ndarray, rate: int) -> float:
    """Integrated loudness of planar (channels, frames) float32 audio."""
    step = int(0.1 * rate)
    segments = x.shape[1] // step
    if segments < 4:
        return float("-inf")
    # Energy of each 100-ms segment (channel weights are 1 for left and right); a 400-ms
    # gating block with 75 % overlap is four consecutive segments.
    seg = _k_weighted_segment_energy(x, rate, step, segments)
    z = (seg[:-3] + seg[1:-2] + seg[2:-1] + seg[3:]) / (4 * step)
    with np.errstate(divide="ignore"):
        loudness = -0.691 + 10.0 * np.log10(z)
    gated = z[loudness >= -70.0]
    if gated.size == 0:
        return float("-inf")
    relative = -0.691 + 10.0 * np.log10(gated.mean()) - 10.0
    gated = z[(loudness >= -70.0) & (loudness > relative)]
    return float(-0.691 + 10.0 * np.log10(gated.mean()))


# Segments filtered and summed at a time: a 1.5-MB piece of the clip stays in the cache.
SEGMENTS_AT_A_TIME = 16


def _k_weighted_segment_energy(x: np.ndarray, rate: int, step: int, segments: int) -> np.ndarray:
    """The K-weighted energy of each ``step``-frame segment, summed over the channels.

    The clip is K-weighted (in float32: far more precise than the 0.1 LU that matters here)
    16 segments at a time into one small buffer, the filters' state carried from piece to
    piece, so the numbers are those of filtering the whole clip at once (then summing each
    segment in float64), without an 11-MB filtered copy of it.
    """
    sos = _k_weighting_sos(rate).astype(np.float32)
    state = np.zeros((x.shape[0], sos.shape[0], 2), dtype=np.float32)
    piece = np.empty((x.shape[0], SEGMENTS_AT_A_TIME * step), dtype=np.float32)
    out = np.empty(segments)
    for i in range(0, segments, SEGMENTS_AT_A_TIME):
        k = min(SEGMENTS_AT_A_TIME, segments - i)
        y = piece if k == SEGMENTS_AT_A_TIME else np.empty((x.shape[0], k * step), dtype=np.float32)
        np.copyto(y, x[:, i * step : (i + k) * step])
        sosfilt_rows_in_place(sos, y, state)
        energy = y.reshape(x.shape[0], k, step).astype(np.float64)
        np.square(energy, out=energy)
        out[i : i + k] = energy.sum(axis=(0, 2))
    return out


@lru_cache(maxsize=1)
def _interpolators() -> np.ndarray:
    """(2*OVERSAMPLE, 2*HALF_TAPS) kernels giving the signal at n-1+p/4 and n+p/4 from x[n-11..n+12]."""
    offsets = np.arange(-HALF_TAPS + 1, HALF_TAPS + 1)  # sample k relative to n
    cutoff = 0.95  # of the original Nyquist frequency
    kernels = []
    for base in (-1.0, 0.0):
        for p in range(OVERSAMPLE):
            t = base + p / OVERSAMPLE - offsets  # distance from each sample
            window = np.kaiser(2 * HALF_TAPS + 1, 8.0)
            w = np.interp(t, np.linspace(-HALF_TAPS, HALF_TAPS, 2 * HALF_TAPS + 1), window)
            kernels.append(cutoff * np.sinc(cutoff * t) * w)
    return np.array(kernels, dtype=np.float64)


def _local_true_peaks(x: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, float]:
    """For planar (channels, frames) audio: the candidate frames (sample peak over
    ``threshold``), the true peak around each, and the overall sample peak."""
    sample_peak = np.abs(x[0])
    for c in range(1, x.shape[0]):
        np.maximum(sample_peak, np.abs(x[c]), out=sample_peak)
    overall = float(sample_peak.max()) if sample_peak.size else 0.0
    idx = np.flatnonzero(sample_peak > threshold)
    if idx.size == 0:
        return idx, np.zeros(0), overall
    offsets = np.arange(-HALF_TAPS + 1, HALF_TAPS + 1)
    windows = np.take(x, (idx[:, None] + offsets[None, :]) % x.shape[1], axis=1)  # (ch, K, taps)
    between = np.einsum("ckt,pt->ckp", windows.astype(np.float64), _interpolators())
    peaks = np.maximum(np.abs(between).max(axis=(0, 2)), sample_peak[idx])
    return idx, peaks, overall


def true_peak(audio: np.ndarray, ceiling: float = db_to_gain(CEILING_DBTP)) -> float:
    """The true peak (linear) of a looping (frames, channels) clip wherever it comes within
    6 dB of ``ceiling``; below that, the sample peak (the true peak is then surely under it)."""
    x = np.asarray(audio, dtype=np.float32)
    planar = np.ascontiguousarray(x[None, :] if x.ndim == 1 else x.T)
    _, peaks, overall = _local_true_peaks(planar, ceiling / 2.0)
    return max(overall, float(peaks.max()) if peaks.size else 0.0)


def _limit_gain(idx: np.ndarray, peaks: np.ndarray, n: int, rate: int, ceiling: float) -> np.ndarray:
    """A smooth, circular gain curve that brings every peak over ``ceiling`` down to it."""
    # Imported here: most clips need no limiting, and scipy.ndimage costs 0.1-0.3 s to import.
    from scipy import ndimage

    over = peaks > ceiling
    need = np.ones(n, dtype=np.float32)
    g = (ceiling / peaks[over]).astype(np.float32)
    for shift in (-1, 0, 1):  # the peak may lie on either side of the candidate sample
        np.minimum.at(need, (idx[over] + shift) % n, g)
    width = max(3, int(LIMITER_WINDOW_S * rate) | 1)
    gain = ndimage.minimum_filter1d(need, width, mode="wrap")
    gain = ndimage.uniform_filter1d(gain, width, mode="wrap")
    # The moving average can overshoot the minimum by float rounding; never allow that.
    return np.minimum(gain, need)


def master(
    audio: np.ndarray,
    rate: int,
    target_lufs: float = TARGET_LUFS,
    ceiling_dbtp: float = CEILING_DBTP,
) -> tuple[np.ndarray, float, float]:
    """Normalise (frames, channels) audio to ``target_lufs`` with the true peak under
    ``ceiling_dbtp``. Returns (audio float32, integrated loudness LUFS, true peak dBTP)."""
    planar = np.array(np.asarray(audio, dtype=np.float32).T, order="C")
    out, loudness, peak = master_planar(planar, rate, target_lufs, ceiling_dbtp)
    return np.ascontiguousarray(out.T), loudness, peak


def master_planar(
    x: np.ndarray,
    rate: int,
    target_lufs: float = TARGET_LUFS,
    ceiling_dbtp: float = CEILING_DBTP,
) -> tuple[np.ndarray, float, float]:
    """As :func:`master`, for planar (channels, frames) float32 audio, changed in place."""
    loudness = _loudness_planar(x, rate)
    if not np.isfinite(loudness):
        return x, loudness, gain_to_db(float(np.abs(x).max()) if x.size else 0.0)
    ceiling = db_to_gain(ceiling_dbtp - CEILING_MARGIN_DB)
    x *= np.float32(db_to_gain(target_lufs - loudness))
    loudness = target_lufs  # a pure gain change moves the loudness by exactly that gain
    for _ in range(8):
        idx, peaks, overall = _local_true_peaks(x, ceiling / 2.0)
        peak = max(overall, float(peaks.max()) if peaks.size else 0.0)
        if peak <= ceiling:
            return x, loudness, gain_to_db(peak)
        x *= _limit_gain(idx, peaks, x.shape[1], rate, ceiling)[None, :]
        # Limiting took a little loudness away: give it back (then check the peaks again).
        loudness = _loudness_planar(x, rate)
        if abs(loudness - target_lufs) >= 0.05:
            x *= np.float32(db_to_gain(target_lufs - loudness))
            loudness = target_lufs
    # Pathological material the limiter cannot tame within its passes: turn it all down.
    idx, peaks, overall = _local_true_peaks(x, ceiling / 2.0)
    peak = max(overall, float(peaks.max()) if peaks.size else 0.0)
    if peak > ceiling:
        x *= np.float32(ceiling / peak)
        peak = ceiling
    return x, _loudness_planar(x, rate), gain_to_db(peak)
