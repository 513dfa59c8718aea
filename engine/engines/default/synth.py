"""FluidSynth, one sound at a time: every sound rendered alone, the same whatever came before.

The renderer asks for sounds (instrument, pitch, velocity, length); :class:`SoundBank` renders
each on a FluidSynth kept for the engine's life and keeps what it rendered, so a sound a clip
shares with an earlier clip (the same note of the same instrument at the same length: common
in a collection, whose paintings share keys, tempi and timbres) is rendered once per process.

That is only right because a sound never depends on what the synthesizer played before.
FluidSynth does carry a little state from one note to the next: a voice it reuses starts its
first 64-frame block from the previous note's last amplitude and filter values (the rest of
the sound is the same to the bit). So before every sound the synthesizer plays the same short
**priming chord** (16 string notes, four blocks, then silenced), which leaves every voice a
note can take in the same state; each sound is then bit-identical to the same sound rendered
on a fresh synthesizer after the chord (tests/test_default_engine_parts.py checks that over
random sounds of every instrument the composer uses). The cache therefore changes no sample:
the same image, duration and seed give the same clip in any process, in any order.
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np

# FluidSynth renders in blocks of 64 frames; keeping note lengths on that grid keeps every
# render aligned with its internal blocks.
BLOCK = 64
MAX_RELEASE_S = 3.0
# A release is cut (with a short fade) once it has fallen this far below the sound's peak:
# -46 dB, far under the other voices and the reverb.
RELEASE_FLOOR = 10 ** (-46 / 20)
RELEASE_FADE = 1024
SILENCE = 1e-5
# The priming chord (General MIDI's String Ensemble 1, or the piano where a SoundFont lacks it):
# more notes than any one sound takes voices, held long enough that the chord's own first
# block (which does depend on what came before) is over.
PRIMING_PROGRAMS = (48, 0)
PRIMING_PITCHES = (48, 56, 64, 72)
PRIMING_VELOCITY = 100
PRIMING_FRAMES = 2 * BLOCK
PRIMING_CHANNEL = 0
# Rendered sounds kept per process (about 100 sounds of a few seconds each): the least
# recently used go first.
SOUND_BANK_BYTES = 64 * 1024 * 1024
# A synthesizer is replaced after this much audio: FluidSynth counts frames in an unsigned
# 32-bit tick counter, which would wrap after 24.9 hours at 48 kHz (a new one sounds the same).
RENEW_AFTER_FRAMES = 3600 * 48000


class RendererError(RuntimeError):
    """The SoundFont or FluidSynth cannot be used; the message says which and why."""


def _fluidsynth():
    try:
        import fluidsynth
    except (ImportError, OSError) as exc:  # OSError: libfluidsynth is missing
        raise RendererError(
            f"FluidSynth is not available ({exc}); install libfluidsynth3 (apt) and pyfluidsynth"
        ) from exc
    lib = fluidsynth._fl
    lib.fluid_synth_write_float.argtypes = [
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    lib.fluid_synth_write_float.restype = ctypes.c_int
    return fluidsynth, lib


def fluidsynth_version() -> str:
    _, lib = _fluidsynth()
    try:
        lib.fluid_version_str.restype = ctypes.c_char_p
        return lib.fluid_version_str().decode()
    except AttributeError:
        return "unknown"


class Synth:
    """A FluidSynth with fixed settings (no chorus, no built-in reverb, one thread, 4th-order
    interpolation), rendering isolated sounds to float32 arrays."""

    def __init__(self, soundfont: Path, rate: int):
        fluidsynth, self._lib = _fluidsynth()
        settings = {
            "synth.reverb.active": 0,
            "synth.chorus.active": 0,
            "synth.cpu-cores": 1,
            "synth.polyphony": 256,
            "synth.dynamic-sample-loading": 1,
            "synth.verbose": 0,
        }
        self.synth = fluidsynth.Synth(gain=0.4, samplerate=float(rate), **settings)
        self.rate = rate
        self.sfid = self.synth.sfload(str(soundfont))
        if self.sfid < 0:
            self.synth.delete()
            raise RendererError(f"{soundfont}: FluidSynth cannot load this SoundFont")
        if not any(
            self.synth.program_select(PRIMING_CHANNEL, self.sfid, 0, p) == 0 for p in PRIMING_PROGRAMS
        ):
            self.synth.delete()
            raise RendererError(
                f"{soundfont}: has neither General-MIDI program 48 nor 0 (not a GM SoundFont)"
            )
        self._programs: dict[int, int] = {}
        self.frames_rendered = 0

    def close(self) -> None:
        self.synth.delete()

    def _channel(self, program: int) -> int:
        """A MIDI channel set to ``program``: one per program (pyfluidsynth gives the synth 256
        channels, and General MIDI has 128 programs); channel 0 is the priming chord's and 9,
        the drum channel, is skipped."""
        if program not in self._programs:
            ch = len(self._programs) + 1
            ch = ch + 1 if ch >= 9 else ch
            if self.synth.program_select(ch, self.sfid, 0, program) != 0:
                raise RendererError(f"the SoundFont has no General-MIDI program {program}")
            self._programs[program] = ch
        return self._programs[program]

    def _write(self, frames: int) -> np.ndarray:
        """The next ``frames`` of output, planar: (2, frames) float32."""
        out = np.empty((2, frames), dtype=np.float32)  # FluidSynth writes every sample
        left, right = out[0].ctypes.data, out[1].ctypes.data
        if self._lib.fluid_synth_write_float(self.synth.synth, frames, left, 0, 1, right, 0, 1) != 0:
            raise RendererError(f"FluidSynth could not render {frames} frames")
        self.frames_rendered += frames
        return out

    def _silence(self, channel: int) -> None:
        """Stop whatever sounds on ``channel`` and flush it, so the next sound starts from quiet."""
        self.synth.all_sounds_off(channel)
        self._write(BLOCK)

    def prime(self) -> None:
        """Play the priming chord: every voice a note can take is left in the same state."""
        for p in PRIMING_PITCHES:
            self.synth.noteon(PRIMING_CHANNEL, p, PRIMING_VELOCITY)
        self._write(PRIMING_FRAMES)
        self._silence(PRIMING_CHANNEL)

    def render(self, program: int, pitches: tuple[int, ...], velocity: int, frames_on: int) -> np.ndarray:
        """The sound of ``pitches`` held for ``frames_on`` frames with its release, (2, frames)."""
        self.prime()
        ch = self._channel(program)
        for p in pitches:
            self.synth.noteon(ch, p, velocity)
        parts = [self._write(frames_on)]
        peak = _abs_max(parts[0])
        for p in pitches:
            self.synth.noteoff(ch, p)
        chunk = 32 * BLOCK
        faded = False
        for _ in range(int(MAX_RELEASE_S * self.rate) // chunk):
            part = self._write(chunk)
            parts.append(part)
            level = _abs_max(part)
            peak = max(peak, level)
            if self.synth.get_active_voice_count() == 0:
                break
            if level < RELEASE_FLOOR * peak:
                part[:, -RELEASE_FADE:] *= _fade_out()
                faded = True
                break
        if not faded and self.synth.get_active_voice_count() > 0:  # cut at MAX_RELEASE_S
            parts[-1][:, -RELEASE_FADE:] *= _fade_out()
        self._silence(ch)
        # Drop the silence at the end of the last chunk (the voices had finished).
        last = parts[-1]
        loud = np.flatnonzero(np.maximum(np.abs(last[0]), np.abs(last[1])) > SILENCE)
        parts[-1] = last[:, : loud[-1] + 1] if loud.size else last[:, :0]
        return np.concatenate(parts, axis=1)


class SoundBank:
    """Rendered sounds by (program, pitches, velocity, frames held), for the life of the
    engine: each rendered once, kept while within :data:`SOUND_BANK_BYTES` (least recently
    used dropped first). Safe to share between threads (one sound is rendered at a time)."""

    def __init__(self, soundfont: Path, rate: int, budget_bytes: int = SOUND_BANK_BYTES):
        self.soundfont = soundfont
        self.rate = rate
        self.budget_bytes = budget_bytes
        self._sounds: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._bytes = 0
        # The synthesizer, in a list the finalizer holds (it must not hold the bank itself):
        # deleted when the bank is collected, or by close().
        self._held: list[Synth | None] = [None]
        self._lock = threading.Lock()
        self.rendered = 0  # sounds synthesised (the rest came from the bank)
        self.reused = 0
        weakref.finalize(self, SoundBank._close_synth, self._held)

    def sound(self, program: int, pitches: tuple[int, ...], velocity: int, frames_on: int) -> np.ndarray:
        """The sound (2, frames) float32, read-only."""
        key = (program, pitches, velocity, frames_on)
        with self._lock:
            found = self._sounds.get(key)
            if found is not None:
                self._sounds.move_to_end(key)
                self.reused += 1
                return found
            found = self._synthesizer().render(program, pitches, velocity, frames_on)
            found.flags.writeable = False
            self.rendered += 1
            self._sounds[key] = found
            self._bytes += found.nbytes
            while self._bytes > self.budget_bytes and len(self._sounds) > 1:
                _, dropped = self._sounds.popitem(last=False)
                self._bytes -= dropped.nbytes
            return found

    def _synthesizer(self) -> Synth:
        synth = self._held[0]
        if synth is not None and synth.frames_rendered > RENEW_AFTER_FRAMES:
            SoundBank._close_synth(self._held)
            synth = None
        if synth is None:
            synth = self._held[0] = Synth(self.soundfont, self.rate)
        return synth

    def close(self) -> None:
        """Delete the synthesizer and forget the sounds (a later call starts afresh)."""
        with self._lock:
            SoundBank._close_synth(self._held)
            self._sounds.clear()
            self._bytes = 0

    @staticmethod
    def _close_synth(holder: list) -> None:
        if holder[0] is not None:
            holder[0].close()
            holder[0] = None


@lru_cache(maxsize=1)
def _fade_out() -> np.ndarray:
    ramp = np.linspace(1.0, 0.0, RELEASE_FADE, dtype=np.float32)
    ramp.flags.writeable = False
    return ramp


def _abs_max(x: np.ndarray) -> float:
    """max(|x|) without the temporary array of |x| (the same value: negation is exact)."""
    return float(max(x.max(), -x.min())) if x.size else 0.0
