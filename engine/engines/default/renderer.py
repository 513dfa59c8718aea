"""From a score to sound: General-MIDI SoundFont instruments (FluidSynth), reverb, mastering.

How it renders, and why:

- **FluidSynth, one sound at a time.** Each distinct sound of the score (instrument, pitches,
  velocity, length) is rendered once, dry, on a synthesizer that plays nothing else, and then
  placed wherever the score uses it. Ambient loops repeat their chords and motifs, so a 30-s
  clip needs only a fraction of its notes synthesised, and the sounds are kept for the next
  clips (synth.py's :class:`~.synth.SoundBank`); that is what makes the engine fast.
- **Deterministic.** Every sound is the same to the bit whatever the synthesizer played
  before it (synth.py says how), so the same score always gives the same samples, in a
  fresh process or after a thousand other clips.
- **A loop without a seam.** Everything is placed modulo the loop length: a note's release
  ringing past the end is wrapped onto the start, and the reverb is a circular convolution,
  so the tail of the last bar sounds under the first bar exactly as it would when the clip
  repeats.
- **Reverb**: a stereo hall impulse response (decorrelated noise in three bands, with highs
  dying first, after a short pre-delay), its length set by the composer.
- **Mastering**: see mastering.py (-18 LUFS, true peak <= -1 dBTP).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np
import soxr

from engine.hashing import sha256_file

from .composer import Composition, Voice
from .kernels import irfft, rfft
from .mastering import master_planar
from .synth import BLOCK, RendererError, SoundBank, _fluidsynth, fluidsynth_version

__all__ = ["SAMPLE_RATE", "Renderer", "RendererError", "bundled_soundfont", "hall_impulse_response"]

SAMPLE_RATE = 48000
CHANNELS = 2
# The reverb runs at a third of the output rate: a hall's tail has little above 8 kHz, and
# the circular convolution then costs a third as much.
REVERB_RATE_DIVISOR = 3
# Velocities are rendered on this grid and the rest applied as gain, so repeated notes with
# slightly different (humanised) velocities share one rendering.
VELOCITY_STEP = 16
WET_LEVEL = 0.42
# Playing level of a voice with gain 1.0 (the melody) before mastering.
VOICE_REFERENCE = 0.05
# Frames mixed at a time: a few 128-KiB buffers stay in the CPU's cache.
MIX_CHUNK = 32768


def bundled_soundfont() -> Path:
    """TimGM6mb.sf2, the small General-MIDI SoundFont that ``pretty_midi`` ships (found
    without importing pretty_midi, which would import mido and more: 0.15 s)."""
    import importlib.util

    spec = importlib.util.find_spec("pretty_midi")
    if spec is None or spec.origin is None:
        raise RendererError("pretty_midi is not installed: no bundled SoundFont (set engine.soundfont)")
    return Path(spec.origin).resolve().parent / "TimGM6mb.sf2"


# A SoundFont is hashed once per process (it names the engine's model version).
file_sha256 = lru_cache(maxsize=4)(sha256_file)


class Renderer:
    """Renders compositions with one SoundFont at 48 kHz stereo float32."""

    def __init__(self, soundfont: str | os.PathLike | None = None, sample_rate: int = SAMPLE_RATE):
        path = Path(soundfont) if soundfont else bundled_soundfont()
        if not path.is_file():
            raise RendererError(f"{path}: SoundFont file not found")
        self.soundfont = path
        self.sample_rate = sample_rate
        # Impulse-response spectra, keyed by (loop frames, reverb seconds, rate): reused.
        self._ir_cache: OrderedDict[tuple[int, float, int], np.ndarray] = OrderedDict()
        _fluidsynth()  # fail early, with the reason, if FluidSynth is missing
        self.sounds = SoundBank(path, sample_rate)

    def version(self) -> str:
        """Identifies what this renderer's output depends on (SoundFont bytes, FluidSynth)."""
        return f"sf2:{file_sha256(str(self.soundfont))[:16]} fluidsynth:{fluidsynth_version()}"

    def render(self, composition: Composition) -> tuple[np.ndarray, dict]:
        """The mastered loop (frames, 2) float32 and figures about the render."""
        rate = self.sample_rate
        n = int(round(composition.duration * rate))
        stems, distinct, events = self._render_voices(composition.voices, n)
        # Planar (2, frames) buffers throughout: contiguous channels are fast to mix.
        mix = np.zeros((2, n), dtype=np.float32)
        send = np.zeros(n, dtype=np.float32)
        scratch = np.empty(MIX_CHUNK, dtype=np.float32)
        both = np.empty(MIX_CHUNK, dtype=np.float32)
        gains = []
        for voice, stem in zip(composition.voices, stems, strict=True):
            level = voice.gain * VOICE_REFERENCE / max(_playing_level(stem, rate), 1e-9)
            left, right = _pan_gains(voice.pan)
            gains.append((level * left, level * right, 0.5 * level * voice.reverb_send))
        # Mixed a cache-sized chunk at a time (every sample gets the same additions in the
        # same order as whole-array passes would give it, so the sum is the same to the bit;
        # whole 1.4-M-frame passes went to main memory and back 16 times).
        for i in range(0, n, MIX_CHUNK):
            j = min(n, i + MIX_CHUNK)
            for stem, (g_left, g_right, g_send) in zip(stems, gains, strict=True):
                _axpy(stem[0, i:j], mix[0, i:j], g_left, scratch)
                _axpy(stem[1, i:j], mix[1, i:j], g_right, scratch)
                # The send takes both channels: summed once, then scaled and added.
                np.add(stem[0, i:j], stem[1, i:j], out=both[: j - i])
                _axpy(both[: j - i], send[i:j], g_send, scratch)
        wet = self._reverb(send, composition.reverb_seconds)
        for i in range(0, n, MIX_CHUNK):
            j = min(n, i + MIX_CHUNK)
            for c in range(2):
                _axpy(wet[c, i:j], mix[c, i:j], WET_LEVEL, scratch)
        mix, loudness, peak = master_planar(mix, rate)
        return _interleaved(mix), {
            "loudness_lufs": round(loudness, 3),
            "true_peak_dbtp": round(peak, 3),
            "sounds": events,
            "sounds_distinct": distinct,
        }

    def _render_voices(self, voices: tuple[Voice, ...], n: int) -> tuple[list[np.ndarray], int, int]:
        """Each voice's stem (2, n); the distinct sounds and the events of the score."""
        rate = self.sample_rate
        keys = set()
        stems = []
        events = 0
        for voice in voices:
            placed = []
            for note in voice.notes:
                frames_on = max(BLOCK, int(round(note.length * rate / BLOCK)) * BLOCK)
                velocity = int(
                    np.clip(round(note.velocity / VELOCITY_STEP) * VELOCITY_STEP, VELOCITY_STEP, 127)
                )
                # FluidSynth's default velocity curve is roughly quadratic in amplitude.
                gain = (note.velocity / velocity) ** 2
                start = int(round(note.start * rate)) % n
                # Chords are rendered note by note: successive chords share tones (smooth
                # voice leading), and a shared tone is then synthesised only once.
                for pitch in note.pitches:
                    key = (voice.instrument.program, (pitch,), velocity, frames_on)
                    keys.add(key)
                    placed.append((start, self.sounds.sound(*key), gain))
                events += 1
            stems.append(_place_looped(placed, n))
        return stems, len(keys), events

    def _reverb(self, send: np.ndarray, seconds: float) -> np.ndarray:
        """Stereo reverb (2, frames) of the mono send, as a circular convolution over the loop.

        Runs at a third of the rate when the loop divides evenly (soxr resampling each way).
        """
        n = len(send)
        k = REVERB_RATE_DIVISOR if n % REVERB_RATE_DIVISOR == 0 else 1
        rate = self.sample_rate // k
        # The reverb's input and output are noise-like tails: soxr's medium quality is plenty.
        low = soxr.resample(send, self.sample_rate, rate, quality="MQ") if k > 1 else send
        m = len(low)
        spectra = self._ir_spectra(m, round(seconds * 4) / 4, rate)
        wet = irfft(spectra * rfft(low)[None, :], n=m, axis=1)
        if k == 1:
            return wet.astype(np.float32, copy=False)
        # Resample the loop with one period of context on each side so the ends stay seamless.
        context = min(m, rate // 10)
        padded = np.concatenate([wet[:, -context:], wet, wet[:, :context]], axis=1, dtype=np.float32)
        # Each channel on its own (soxr filters channels independently: the same samples as a
        # two-channel call, without transposing to interleaved frames and back).
        start = context * k
        out = np.empty((2, n), dtype=np.float32)
        for c in range(2):
            out[c] = soxr.resample(padded[c], rate, self.sample_rate, quality="MQ")[start : start + n]
        return out

    def _ir_spectra(self, n: int, seconds: float, rate: int) -> np.ndarray:
        key = (n, seconds, rate)
        if key in self._ir_cache:
            self._ir_cache.move_to_end(key)
            return self._ir_cache[key]
        ir = hall_impulse_response(seconds, rate)
        folded = np.zeros((2, n), dtype=np.float32)
        for start in range(0, ir.shape[1], n):  # an IR longer than the loop wraps round
            part = ir[:, start : start + n]
            folded[:, : part.shape[1]] += part
        spectra = rfft(folded, axis=1).astype(np.complex64)
        self._ir_cache[key] = spectra
        while len(self._ir_cache) > 8:
            self._ir_cache.popitem(last=False)
        return spectra


def _playing_level(stem: np.ndarray, rate: int) -> float:
    """RMS of a voice while it plays: the louder half of its 100-ms blocks (every 4th frame
    is enough to measure it), so a sparse melody is not judged quiet for its rests."""
    step = rate // 10
    x = stem[:, ::4]
    blocks = x[:, : x.shape[1] // (step // 4) * (step // 4)].reshape(2, -1, step // 4)
    energy = np.square(blocks, dtype=np.float32).mean(axis=(0, 2))
    if energy.size == 0:
        return 0.0
    loud = np.sort(energy)[energy.size // 2 :]
    return float(np.sqrt(loud.mean()))


def _interleaved(planar: np.ndarray) -> np.ndarray:
    """(2, frames) -> (frames, 2): a channel at a time (a quarter of the time numpy's
    ascontiguousarray(planar.T) takes, for the same values)."""
    out = np.empty((planar.shape[1], planar.shape[0]), dtype=planar.dtype)
    for c in range(planar.shape[0]):
        out[:, c] = planar[c]
    return out


def _pan_gains(pan: float) -> tuple[float, float]:
    """Equal-power balance: (1, 1) in the centre, sqrt(2) and 0 at the sides."""
    angle = (np.clip(pan, -1.0, 1.0) + 1.0) * np.pi / 4.0
    return float(np.cos(angle) * np.sqrt(2.0)), float(np.sin(angle) * np.sqrt(2.0))


def _place_looped(placed: list[tuple[int, np.ndarray, float]], n: int) -> np.ndarray:
    """Sum (2, frames) sounds at their start frames into a loop of ``n`` frames; what
    overhangs the end is wrapped onto the start."""
    loop = np.zeros((2, n), dtype=np.float32)
    scratch = np.empty(max((s.shape[1] for _, s, _ in placed), default=0), dtype=np.float32)
    for start, sound, gain in placed:
        pos, done = start, 0
        while done < sound.shape[1]:
            take = min(n - pos, sound.shape[1] - done)
            for c in range(2):
                _axpy(sound[c, done : done + take], loop[c, pos : pos + take], gain, scratch)
            done += take
            pos = 0
    return loop


def _axpy(x: np.ndarray, y: np.ndarray, a: float, scratch: np.ndarray) -> None:
    """y += a * x in place, using ``scratch`` (at least as long as x) instead of a new array.

    (Plain numpy on purpose: BLAS's saxpy would start its thread pool for every sound.)
    """
    if a == 1.0:
        y += x
        return
    tmp = scratch[: x.shape[-1]]
    np.multiply(x, np.float32(a), out=tmp)
    y += tmp


@lru_cache(maxsize=8)
def hall_impulse_response(seconds: float, rate: int) -> np.ndarray:
    """A stereo hall impulse response (2, frames) with an RT60 of ``seconds``; unit energy.

    Decorrelated noise for left and right, split into low, mid and high bands that die away
    at different rates (highs first, as air and walls absorb them), after a 18-ms pre-delay
    with a few early reflections. Fixed random seed: the same every time.
    """
    rng = np.random.default_rng(1770)
    length = int(seconds * 1.2 * rate)
    t = np.arange(length) / rate
    noise = rng.standard_normal((2, length))
    spectrum = np.fft.rfft(noise, axis=1)
    freqs = np.fft.rfftfreq(length, 1.0 / rate)
    bands = [(0, 500, 1.25), (500, 4000, 1.0), (4000, rate / 2 + 1, 0.45)]
    tail = np.zeros((2, length))
    for lo, hi, rt_scale in bands:
        mask = (freqs >= lo) & (freqs < hi)
        band = np.fft.irfft(spectrum * mask, n=length, axis=1)
        tail += band * np.exp(-6.91 * t / (seconds * rt_scale))
    predelay = int(0.018 * rate)
    ir = np.zeros((2, length + predelay))
    # A slow fade-in makes the tail bloom rather than start with a crack.
    ir[:, predelay:] = tail * np.minimum(1.0, t / 0.06)
    for delay_ms, gain, side in ((7, 0.5, 0), (11, 0.45, 1), (17, 0.35, 0), (23, 0.3, 1)):
        ir[side, int(delay_ms * rate / 1000)] += gain * np.sqrt(np.mean(tail**2)) * 40
    ir /= np.sqrt((ir**2).sum() / 2)
    return ir.astype(np.float32)
