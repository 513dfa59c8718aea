"""The mixer that runs inside the audio callback.

Everything the callback touches is prepared elsewhere: clips are float32 arrays at the stream's
rate and channel count (see ``prepare.py``), scratch buffers are allocated here once (the
callback creates only the small view objects that slicing makes, never sample memory), and
commands from other threads arrive through a ``collections.deque`` (``append``/``popleft`` are
atomic in CPython), so the UI can never hold a lock the callback waits for. The callback only
copies and scales samples with numpy ``out=`` operations; it never raises and always fills the
buffer (silence on trouble, counted in ``errors``).

Crossfades are equal power: the incoming voice rises as sin(pi/2 * t) while every voice that
was sounding keeps the gain it had at that moment and falls as cos(pi/2 * t) from there. A tap
during a running crossfade therefore freezes the current mix and fades it out as a whole while
the newest clip fades in: three quick taps end on the last clip with no jump in level.
"""

from __future__ import annotations

import collections
import itertools
import math
import threading
import time

import numpy as np

# Voices that can sound at once: the playing clip plus the ones still fading out.
MAX_VOICES = 8
# Largest block handled in one pass; bigger callbacks are rendered in several passes.
MAX_BLOCK = 8192
# Recent output kept (mono) for level() and spectrum().
HISTORY = 8192
HALF_PI = math.pi / 2


class _Voice:
    """One clip sounding: read position and gain envelope (all plain numbers)."""

    __slots__ = (
        "clip", "direction", "fade_len", "fade_pos", "gain", "loop", "loop_start", "pos", "samples", "stop_at",
    )  # fmt: skip

    def __init__(self) -> None:
        self.clip = None
        self.samples = None
        self.pos = 0
        self.loop = True
        self.loop_start = 0  # where the loop comes round to...
        self.stop_at = 0  # ...from here (the loop's end, or the clip's end when it plays once)
        self.gain = 0.0  # the steady gain, or the gain a fade-out starts from
        self.fade_len = 0
        self.fade_pos = 0
        self.direction = 0  # +1 fading in, -1 fading out, 0 steady

    @property
    def active(self) -> bool:
        return self.samples is not None

    def current_gain(self) -> float:
        if self.direction == 0:
            return self.gain
        x = min(self.fade_pos / self.fade_len, 1.0) * HALF_PI
        return math.sin(x) if self.direction > 0 else self.gain * math.cos(x)


class _Ramp:
    """A gain that moves linearly to a target over a number of frames."""

    __slots__ = ("step", "target", "value")

    def __init__(self, value: float) -> None:
        self.value = self.target = value
        self.step = 0.0

    def set(self, target: float, frames: int) -> None:
        self.target = target
        if frames <= 0:
            self.value, self.step = target, 0.0
        else:
            self.step = (target - self.value) / frames

    def advance(self, frames: int) -> float:
        if self.step != 0.0:
            v = self.value + self.step * frames
            if (self.step > 0 and v >= self.target) or (self.step < 0 and v <= self.target):
                v, self.step = self.target, 0.0
            self.value = v
        return self.value


class Mixer:
    """Mixes voices into the output; ``callback`` is the sounddevice stream callback."""

    def __init__(self, sample_rate: int, channels: int, volume: float = 1.0) -> None:
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self._commands: collections.deque = collections.deque()
        # Clips the callback has finished with; released by the control side (freeing a big
        # array inside the callback could take a while).
        self.retired: collections.deque = collections.deque()
        self._voices = [_Voice() for _ in range(MAX_VOICES)]
        self._volume = _Ramp(volume)  # set_volume
        self._fade = _Ramp(1.0)  # fade_out / fade_in
        self._schedule = _Ramp(1.0)  # quiet hours
        # Scratch buffers, allocated once: the callback never allocates sample memory.
        self._mix = np.zeros((MAX_BLOCK, self.channels), np.float32)
        self._voice_buf = np.zeros((MAX_BLOCK, self.channels), np.float32)
        self._gain = np.zeros((MAX_BLOCK, 1), np.float32)
        # 1..n: a fade's k-th sample (k from 1) sits at phase k/len, so it ends exactly on 1 or 0.
        self._ramp = np.arange(1, MAX_BLOCK + 1, dtype=np.float32).reshape(-1, 1)
        self._mono = np.zeros(MAX_BLOCK, np.float32)
        self._history = np.zeros(HISTORY, np.float32)
        self.history_pos = 0
        # Telemetry, read by other threads (plain numbers: reads are atomic).
        self.frames_played = 0
        self.callbacks = 0
        self.underruns = 0
        self.errors = 0
        self.last_error = ""
        self.busy_seconds = 0.0  # time spent in the callback...
        self.audio_seconds = 0.0  # ...for this much audio: load = busy / audio
        self.load_recent = 0.0  # moving average over about the last 50 callbacks
        self.load_max = 0.0
        self.last_callback = 0.0  # time.monotonic() of the last callback
        # What plays, as the callback sees it, and as the last command asked for: until the
        # callback has taken a command, readers get the requested clip at position 0.
        self._playing_key: str | None = None
        self._playing_pos = 0  # read position of the newest voice
        self._newest: _Voice | None = None
        self._requested_key: str | None = None
        self._seq = itertools.count(1)
        self._seq_requested = 0
        self._seq_applied = 0
        # Orders requests from several control threads; the callback never takes it.
        self._request_lock = threading.Lock()

    # -- control side (any thread) ------------------------------------------------------
    def crossfade_to(self, clip, seconds: float, loop: bool = True) -> None:
        self._request(("xfade", clip, self._frames(seconds), loop))

    def stop_all(self, seconds: float) -> None:
        """Fade every voice out (the player goes quiet and forgets what was playing)."""
        self._request(("xfade", None, self._frames(seconds), True))

    def _request(self, cmd: tuple) -> None:
        with self._request_lock:
            seq = next(self._seq)
            self._requested_key = cmd[1].key if cmd[1] is not None else None
            self._seq_requested = seq
            self._commands.append((*cmd, seq))

    @property
    def now_playing(self) -> str | None:
        """Key of the newest clip (one just asked for counts, before it is heard)."""
        if self._seq_applied < self._seq_requested:
            return self._requested_key
        return self._playing_key

    @property
    def position_frames(self) -> int:
        """Read position in the newest clip (0 while a new one waits for the callback)."""
        if self._seq_applied < self._seq_requested:
            return 0
        return self._playing_pos

    def set_volume(self, volume: float, seconds: float) -> None:
        self._commands.append(("ramp", self._volume, float(volume), self._frames(seconds)))

    def set_fade(self, level: float, seconds: float) -> None:
        self._commands.append(("ramp", self._fade, float(level), self._frames(seconds)))

    def set_schedule(self, level: float, seconds: float) -> None:
        self._commands.append(("ramp", self._schedule, float(level), self._frames(seconds)))

    def in_use(self) -> set:
        """Keys of the clips sounding or queued (the cache must not evict them)."""
        keys = {v.clip.key for v in list(self._voices) if v.clip is not None}
        keys.update(c[1].key for c in list(self._commands) if c[0] == "xfade" and c[1] is not None)
        return keys

    def release_retired(self) -> None:
        while self.retired:
            self.retired.popleft()

    def _frames(self, seconds: float) -> int:
        return max(0, int(round(seconds * self.sample_rate)))

    @property
    def load_mean(self) -> float:
        """Callback time over audio time since the mixer started."""
        return self.busy_seconds / self.audio_seconds if self.audio_seconds else 0.0

    @property
    def master_gain(self) -> float:
        return self._volume.value * self._fade.value * self._schedule.value

    # -- audio side (the callback) ------------------------------------------------------
    def callback(self, outdata, frames, time_info, status) -> None:
        start = time.perf_counter()
        try:
            if status.output_underflow:
                self.underruns += 1
            done = 0
            while done < frames:
                n = min(frames - done, MAX_BLOCK)
                self.render(outdata[done : done + n], n)
                done += n
        except Exception as exc:  # never raise into PortAudio: play silence and count it
            outdata.fill(0)
            self.errors += 1
            self.last_error = repr(exc)
            self._drop_voices()  # whatever broke is not tried again on every block
        busy = time.perf_counter() - start
        block = frames / self.sample_rate
        load = busy / block if block > 0 else 0.0
        self.busy_seconds += busy
        self.audio_seconds += block
        self.load_recent += 0.02 * (load - self.load_recent)
        if load > self.load_max:
            self.load_max = load
        self.callbacks += 1
        self.last_callback = time.monotonic()

    def render(self, out, n: int) -> None:
        """Mix ``n`` frames into ``out`` (shape (n, channels))."""
        self._apply_commands()
        mix = self._mix[:n]
        mix.fill(0.0)
        for voice in self._voices:
            if voice.samples is not None:
                self._render_voice(voice, mix, n)
        self._apply_master(mix, n)
        np.clip(mix, -1.0, 1.0, out=out)
        self._remember(mix, n)
        self.frames_played += n

    def _apply_commands(self) -> None:
        commands = self._commands
        while commands:
            cmd = commands.popleft()
            if cmd[0] == "xfade":
                self._start_crossfade(cmd[1], cmd[2], cmd[3])
                self._seq_applied = cmd[4]
            else:
                cmd[1].set(cmd[2], cmd[3])

    def _start_crossfade(self, clip, frames: int, loop: bool) -> None:
        frames = max(frames, 1)
        # Freeze every sounding voice at its present gain and fade it out from there.
        for v in self._voices:
            if v.samples is not None:
                g = v.current_gain()
                if g <= 0.0:
                    self._retire(v)
                    continue
                v.gain, v.direction, v.fade_pos, v.fade_len = g, -1, 0, frames
        if clip is None:
            self._playing_key, self._newest = None, None
            return
        slot = self._free_voice()
        slot.clip, slot.samples, slot.pos, slot.loop = clip, clip.samples, 0, loop
        slot.loop_start = clip.loop_start if loop else 0
        slot.stop_at = clip.loop_end if loop else clip.samples.shape[0]
        slot.gain, slot.direction, slot.fade_pos, slot.fade_len = 1.0, 1, 0, frames
        self._playing_key, self._playing_pos, self._newest = clip.key, 0, slot

    def _drop_voices(self) -> None:
        try:
            for v in self._voices:
                self._retire(v)
        except Exception:
            pass

    def _free_voice(self) -> _Voice:
        for v in self._voices:
            if v.samples is None:
                return v
        # All busy (a storm of taps): reuse the quietest voice, which is nearly silent.
        quietest = min(self._voices, key=lambda v: v.current_gain())
        self._retire(quietest)
        return quietest

    def _retire(self, v: _Voice) -> None:
        if v.clip is not None:
            self.retired.append(v.clip)
        v.clip = v.samples = None
        v.direction = 0
        if self._newest is v:
            self._playing_key, self._newest = None, None

    def _render_voice(self, v: _Voice, mix, n: int) -> None:
        buf = self._voice_buf[:n]
        ended_at = self._read(v, buf, n)
        if v.direction == 0:
            if v.gain != 1.0:
                np.multiply(buf, np.float32(v.gain), out=buf)
        else:
            g = self._gain[:n]
            # phase = (fade_pos + i) / fade_len * pi/2, clamped at the end of the fade
            np.add(self._ramp[:n], np.float32(v.fade_pos), out=g)
            np.multiply(g, np.float32(HALF_PI / v.fade_len), out=g)
            np.minimum(g, np.float32(HALF_PI), out=g)
            if v.direction > 0:
                np.sin(g, out=g)
            else:
                np.cos(g, out=g)
                np.maximum(g, np.float32(0.0), out=g)  # cos(pi/2) is -4e-8 in float32
                np.multiply(g, np.float32(v.gain), out=g)
            np.multiply(buf, g, out=buf)
            v.fade_pos += n
            if v.fade_pos >= v.fade_len:
                if v.direction > 0:
                    v.gain, v.direction = 1.0, 0
                else:
                    ended_at = 0
        np.add(mix, buf, out=mix)
        if self._newest is v:
            self._playing_pos = v.pos
        if ended_at is not None:
            self._retire(v)

    def _read(self, v: _Voice, buf, n: int):
        """Copy the next ``n`` frames of the voice into ``buf``, wrapping from the clip's loop
        end to its loop start when it loops (an engine clip: its whole length, never shorter).

        Returns None while the voice goes on, or the frame where a one-shot clip ended.
        """
        src = v.samples
        length = v.stop_at
        done = 0
        while done < n:
            take = min(n - done, length - v.pos)
            buf[done : done + take] = src[v.pos : v.pos + take]
            done += take
            v.pos += take
            if v.pos >= length:
                if not v.loop:
                    buf[done:].fill(0.0)
                    return done
                v.pos = v.loop_start
        return None

    def _apply_master(self, mix, n: int) -> None:
        start = self.master_gain
        self._volume.advance(n)
        self._fade.advance(n)
        self._schedule.advance(n)
        end = self.master_gain
        if start == end:
            if start != 1.0:
                np.multiply(mix, np.float32(start), out=mix)
            return
        # Product of three linear ramps, interpolated linearly across the block.
        g = self._gain[:n]
        np.multiply(self._ramp[:n], np.float32((end - start) / n), out=g)
        np.add(g, np.float32(start), out=g)
        np.multiply(mix, g, out=mix)

    def _remember(self, mix, n: int) -> None:
        mono = self._mono[:n]
        np.sum(mix, axis=1, out=mono)
        np.multiply(mono, np.float32(1.0 / self.channels), out=mono)
        pos = self.history_pos
        first = min(n, HISTORY - pos)
        self._history[pos : pos + first] = mono[:first]
        if first < n:
            self._history[: n - first] = mono[first:n]
        self.history_pos = (pos + n) % HISTORY

    # -- readers (any thread) -----------------------------------------------------------
    def recent(self, frames: int) -> np.ndarray:
        """A copy of the last ``frames`` mono output samples (oldest first)."""
        frames = min(frames, HISTORY)
        pos = self.history_pos
        return np.roll(self._history, -pos)[HISTORY - frames :].copy()
