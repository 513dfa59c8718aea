"""The player the kiosk and ``art2mus audio play`` use: prepare clips, crossfade, report.

    player = Player(config.audio)
    player.start()
    clip = player.prepare("clip:42", lambda: store.load_audio(42))   # any thread
    player.crossfade_to(clip)                                        # returns at once

Clips are prepared on the caller's thread for the stream's rate and channels and cached under
``audio.cache_megabytes``; the mixer plays them in the stream callback; a supervisor thread
keeps the stream alive and applies the quiet hours.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable

import numpy as np

from engine.loops import Loop, LoopMode

from . import portaudio
from .mixer import HISTORY, Mixer
from .prepare import ClipCache, PreparedClip, prepare_samples
from .schedule import QuietSchedule
from .supervisor import AudioState, NoDeviceError, StreamSupervisor, choose_device

log = logging.getLogger(__name__)

Loader = Callable[[], tuple[np.ndarray, int]]

# The shortest change of level at a quiet-hours boundary (audio.quiet_ramp_seconds may say 0).
MIN_QUIET_RAMP_SECONDS = 2.0

# Seconds a Python thread may hold the GIL while the audio callback waits for it.
SWITCH_INTERVAL = 0.0005


class Player:
    def __init__(
        self,
        config,
        *,
        on_fatal: Callable[[str], None] | None = None,
        on_lost: Callable[[str], None] | None = None,
        clock: Callable[[], dt.datetime] = dt.datetime.now,
        freeze_gc: bool = True,
    ) -> None:
        self.config = config
        self.freeze_gc = freeze_gc
        self.on_fatal = on_fatal
        self.on_lost = on_lost
        self.clock = clock
        self.schedule = QuietSchedule(config.quiet_hours)
        self.sample_rate = int(config.sample_rate)
        self.channels = 2
        self.mixer: Mixer | None = None
        self.supervisor: StreamSupervisor | None = None
        self.cache = ClipCache(config.cache_megabytes * 2**20, in_use=self._in_use)
        self._key_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._schedule_level = 1.0
        self._next_schedule_check = 0.0
        self._started = False
        self._format_known = False
        self._format_lock = threading.Lock()

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> bool:
        """Open the output and start the supervisor. True when sound is flowing.

        False means no device works yet; the supervisor keeps trying for
        ``audio.recover_seconds`` and then gives up (``on_fatal``).
        """
        if self._started:
            return self.supervisor.healthy
        self._ensure_format()
        if self.freeze_gc:
            # The callback needs the GIL, and a full garbage collection holds it for as long as
            # it takes to walk every object (30 ms for a bare kiosk process: longer than a
            # block). Objects alive now (modules, classes, caches) are moved out of the
            # collector's sight, so later collections walk only what is created from here on.
            gc.collect()
            gc.freeze()
        # Each numpy call in the callback lets go of the GIL; getting it back waits until the
        # thread holding it is asked to switch, by default after 5 ms. Ask sooner.
        if sys.getswitchinterval() > SWITCH_INTERVAL:
            sys.setswitchinterval(SWITCH_INTERVAL)
        self.mixer = Mixer(self.sample_rate, self.channels, volume=self.config.volume)
        self._schedule_level = self.schedule.factor_at(self.clock())
        self.mixer.set_schedule(self._schedule_level, 0.0)
        self.supervisor = StreamSupervisor(
            self.mixer,
            device=self.config.device,
            block_size=self.config.block_size,
            recover_seconds=self.config.recover_seconds,
            on_fatal=self.on_fatal,
            on_lost=self.on_lost,
            on_tick=self._tick,
        )
        self._started = True
        ok = self.supervisor.start()
        if not ok:
            log.error("no audio output yet; retrying for %.0f s", self.config.recover_seconds)
        return ok

    def close(self, fade_seconds: float = 0.0) -> None:
        """Stop the output; with ``fade_seconds`` the sound first fades out (never a cut)."""
        m, s = self.mixer, self.supervisor
        if fade_seconds > 0 and m is not None and s is not None and s.healthy and m.master_gain > 0.0:
            m.set_fade(0.0, fade_seconds)
            # Until the fade has reached the output (a few blocks of latency after it).
            deadline = time.monotonic() + fade_seconds + 1.0
            while m.master_gain > 0.0 and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(min(0.25, 4 * self.config.block_size / self.sample_rate))
        if self.supervisor is not None:
            self.supervisor.close()
        self._started = False

    def __enter__(self) -> Player:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _ensure_format(self) -> None:
        with self._format_lock:
            if not self._format_known:
                self._choose_format()
                self._format_known = True

    def _choose_format(self) -> None:
        """Play at the configured rate where the device takes it, else at the device's own."""
        sd = portaudio.sd()
        try:
            device = choose_device(self.config.device)
        except NoDeviceError:
            log.warning("no output device at start; assuming %d Hz stereo", self.sample_rate)
            return
        self.channels = min(2, device.channels)
        try:
            sd.check_output_settings(
                device=device.index,
                samplerate=self.config.sample_rate,
                channels=self.channels,
                dtype="float32",
            )
            self.sample_rate = int(self.config.sample_rate)
        except Exception:
            self.sample_rate = int(device.default_rate)
            log.info(
                "device %r does not take %d Hz; playing at its %d Hz",
                device.name,
                self.config.sample_rate,
                self.sample_rate,
            )

    # -- clips --------------------------------------------------------------------------
    def prepare(
        self, key: str, loader: Loader, *, loop: Loop | LoopMode = LoopMode.FIND_SEAM
    ) -> PreparedClip:
        """The clip ``key`` ready to play: from the cache, or loaded and resampled now.

        ``loop``: the clip's own loop (frames at the loaded rate; an engine clip's, from the
        store or a file's loop marker), ``LoopMode.WHOLE`` for audio made to loop as it is, or
        ``LoopMode.FIND_SEAM`` (audio without a marker: a seam of ``audio.loop_seam_seconds``
        at its best loop point).
        """
        clip = self.cache.get(key)
        if clip is not None:
            return clip
        self._ensure_format()  # prepare() may come before start(): clips match the stream
        with self._lock_for(key):  # two threads asking for one clip prepare it once
            clip = self.cache.get(key)
            if clip is None:
                audio, rate = loader()
                clip = prepare_samples(
                    key,
                    audio,
                    rate,
                    target_rate=self.sample_rate,
                    channels=self.channels,
                    loop=loop,
                    loop_seam_seconds=getattr(self.config, "loop_seam_seconds", 0.0),
                )
                self.cache.put(clip)
        with self._locks_lock:
            self._key_locks.pop(key, None)
        return clip

    def is_prepared(self, key: str) -> bool:
        return key in self.cache

    def _lock_for(self, key: str) -> threading.Lock:
        with self._locks_lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _in_use(self) -> set:
        return self.mixer.in_use() if self.mixer is not None else set()

    # -- playing ------------------------------------------------------------------------
    def crossfade_to(self, clip: PreparedClip, seconds: float | None = None, *, loop: bool = True) -> None:
        """Fade ``clip`` in over ``seconds`` (default ``audio.crossfade_seconds``) while
        whatever sounds fades out; the clip loops unless ``loop`` is False. Returns at once."""
        self._require_started()
        if clip.sample_rate != self.sample_rate or clip.channels != self.channels:
            raise ValueError(
                f"clip {clip.key!r} is prepared for {clip.sample_rate} Hz/{clip.channels} ch, "
                f"the stream plays {self.sample_rate} Hz/{self.channels} ch: prepare it again"
            )
        self.mixer.crossfade_to(clip, self._seconds(seconds, self.config.crossfade_seconds), loop)

    def stop(self, seconds: float | None = None) -> None:
        """Fade out and forget what was playing (``fade_out`` keeps it for ``fade_in``)."""
        self._require_started()
        self.mixer.stop_all(self._seconds(seconds, self.config.crossfade_seconds))

    def fade_out(self, seconds: float | None = None) -> None:
        self._require_started()
        self.mixer.set_fade(0.0, self._seconds(seconds, self.config.crossfade_seconds))

    def fade_in(self, seconds: float | None = None) -> None:
        self._require_started()
        self.mixer.set_fade(1.0, self._seconds(seconds, self.config.crossfade_seconds))

    def set_volume(self, volume: float, ramp_seconds: float | None = None) -> None:
        if not 0.0 <= volume <= 1.0:
            raise ValueError(f"volume {volume!r} is outside 0..1")
        self._require_started()
        self.mixer.set_volume(volume, self._seconds(ramp_seconds, self.config.ramp_seconds))

    @staticmethod
    def _seconds(value: float | None, default: float) -> float:
        return default if value is None else max(0.0, float(value))

    def _require_started(self) -> None:
        if self.mixer is None:
            raise RuntimeError("Player.start() has not been called")

    # -- what is playing ----------------------------------------------------------------
    @property
    def now_playing(self) -> str | None:
        return self.mixer.now_playing if self.mixer is not None else None

    def position(self) -> float:
        """Seconds into the newest clip (where a loop is, it wraps)."""
        return self.mixer.position_frames / self.sample_rate if self.mixer is not None else 0.0

    def level(self) -> float:
        """RMS of the last ~0.1 s of output, 0..1."""
        if self.mixer is None:
            return 0.0
        recent = self.mixer.recent(int(0.1 * self.sample_rate))
        return float(min(1.0, np.sqrt(np.mean(recent * recent)) * np.sqrt(2)))

    def spectrum(self, bands: int) -> np.ndarray:
        """Recent output in ``bands`` log-spaced bands (40 Hz..16 kHz), each 0..1 (-70..-10 dB)."""
        if self.mixer is None or bands <= 0:
            return np.zeros(max(bands, 0), np.float32)
        n = min(4096, HISTORY)
        x = self.mixer.recent(n) * np.hanning(n).astype(np.float32)
        power = np.abs(np.fft.rfft(x)) ** 2 / (n * n / 4)
        freqs = np.fft.rfftfreq(n, 1.0 / self.sample_rate)
        edges = np.geomspace(40.0, min(16000.0, self.sample_rate / 2), bands + 1)
        idx = np.searchsorted(freqs, edges)
        out = np.empty(bands, np.float32)
        for b in range(bands):
            lo, hi = idx[b], max(idx[b + 1], idx[b] + 1)
            out[b] = power[lo:hi].sum()
        db = 10 * np.log10(out + 1e-12)
        return np.clip((db + 70.0) / 60.0, 0.0, 1.0).astype(np.float32)

    def telemetry(self) -> dict:
        """Figures for the kiosk's status view and the health report."""
        m, s = self.mixer, self.supervisor
        if m is None or s is None:
            return {"running": False}
        return {
            "running": True,
            "healthy": s.healthy,
            "state": s.state,
            "status": self._status_line(s),
            "device": s.device.name if s.device else None,
            "hostapi": s.device.hostapi if s.device else None,
            "device_matched": bool(s.device and s.device.matched) if self.config.device else None,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "block_size": self.config.block_size,
            "underruns": m.underruns,
            "callback_errors": m.errors,
            "last_error": m.last_error,
            "restarts": s.restarts,
            "callbacks": m.callbacks,
            "callback_load": m.load_mean,
            "callback_load_recent": m.load_recent,
            "callback_load_max": m.load_max,
            "seconds_since_callback": (time.monotonic() - m.last_callback) if m.last_callback else None,
            "seconds_since_supervisor": s.seconds_since_turn(),
            "now_playing": m.now_playing,
            "volume": m.master_gain,
            "quiet_hours_level": self._schedule_level,
            "cache_clips": len(self.cache),
            "cache_megabytes": self.cache.bytes / 2**20,
            "events": [
                f"{time.strftime('%H:%M:%S', time.localtime(t))} {what}" for t, what in s.events[-10:]
            ],
        }

    @staticmethod
    def _status_line(s: StreamSupervisor) -> str:
        """One plain line for the curator panel."""
        if s.state == AudioState.PLAYING:
            return ""
        if s.state == AudioState.RECOVERING:
            return f"✕ Sound interrupted for {s.down_seconds():.0f} s: reopening the audio device…"
        return (
            f"✕ NO SOUND for {s.down_seconds():.0f} s: no working audio output. The kiosk keeps "
            f"trying (every {s.retry_seconds:.0f} s); check the speakers' cable and power, "
            "or `art2mus audio devices`."
        )

    def health(self) -> tuple[bool, str]:
        """(ok, one line) for the health report."""
        t = self.telemetry()
        if not t.get("running"):
            return False, "audio: not started"
        line = (
            f"audio: {'ok' if t['healthy'] else str(t['state']).upper()} on {t['device']!r} "
            f"{t['sample_rate']} Hz; underruns {t['underruns']}, restarts {t['restarts']}, "
            f"load {t['callback_load']:.1%} (max {t['callback_load_max']:.1%})"
        )
        return bool(t["healthy"]), line

    # -- supervisor tick ----------------------------------------------------------------
    def _tick(self) -> None:
        self.mixer.release_retired()
        now = time.monotonic()
        if now >= self._next_schedule_check:
            self._next_schedule_check = now + 5.0
            level = self.schedule.factor_at(self.clock())
            if level != self._schedule_level:
                log.info(
                    "quiet hours: volume level %.0f%% (over %.0f s)",
                    level * 100,
                    self.config.quiet_ramp_seconds,
                )
                self._schedule_level = level
                # Never a step, even with quiet_ramp_seconds = 0.
                ramp = max(self.config.quiet_ramp_seconds, MIN_QUIET_RAMP_SECONDS)
                self.mixer.set_schedule(level, ramp)
