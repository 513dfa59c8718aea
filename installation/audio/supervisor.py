"""Keeps one output stream playing the mixer, whatever happens to the device.

A thread checks a few times a second that the callback is being called and the stream is
active. A stalled callback, a stream that stopped or errored, or a vanished device (a JACK
server that died, a USB interface unplugged) makes it close the stream and open a new one,
re-initialising PortAudio so that a restarted server or a re-plugged device is seen again.
The mixer lives outside the stream, so what was playing carries on from the same position.
If no stream can be made to work within ``recover_seconds``, a supervisor given ``on_lost``
(the kiosk) reports it once through that callback and keeps trying with back-off (the attempts
spread out to one every ``MAX_RETRY_SECONDS``), so the screen stays up and the sound returns
when a device appears; without ``on_lost`` (``art2mus audio play``) it gives up and calls
``on_fatal`` (by default: exit non-zero so that systemd restarts the process). ``on_fatal``
also ends a process that is really stuck (too many abandoned PortAudio instances).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from . import portaudio

log = logging.getLogger(__name__)

# Seconds between attempts to open a stream while none works...
RETRY_SECONDS = 0.25
# ...growing by this factor per failed attempt once recover_seconds have passed, up to this.
RETRY_BACKOFF = 2.0
MAX_RETRY_SECONDS = 5.0


class AudioState(StrEnum):
    """What the output is doing, for the curator panel and the health report."""

    PLAYING = "playing"
    RECOVERING = "recovering"  # reopening the device (within recover_seconds)
    NO_DEVICE = "no-device"  # nothing worked for recover_seconds; retrying with back-off


# PortAudio's PaErrorCode for a sample rate the device does not take (paInvalidSampleRate).
PA_INVALID_SAMPLE_RATE = -9997


def _is_invalid_rate(exc: Exception) -> bool:
    """Whether opening a stream failed because the device plays another sample rate."""
    return len(exc.args) > 1 and exc.args[1] == PA_INVALID_SAMPLE_RATE


# Exit status when audio cannot be recovered (EX_TEMPFAIL: systemd's Restart= tries again).
EXIT_AUDIO_FAILED = 75


class NoDeviceError(RuntimeError):
    """No output device is available."""


@dataclass
class DeviceChoice:
    index: int
    name: str
    hostapi: str
    channels: int
    default_rate: float
    matched: bool  # False when the configured name was not found and the default is used


def list_output_devices() -> list[dict]:
    sd = portaudio.sd()
    hostapis = sd.query_hostapis()
    try:
        default_out = sd.default.device[1]
    except Exception:
        default_out = -1
    if default_out is None or default_out < 0:
        default_out = next(
            (h["default_output_device"] for h in hostapis if h["default_output_device"] >= 0), -1
        )
    rows = []
    for d in sd.query_devices():
        if d["max_output_channels"] > 0:
            rows.append(
                {
                    "index": d["index"],
                    "name": d["name"],
                    "hostapi": hostapis[d["hostapi"]]["name"],
                    "channels": d["max_output_channels"],
                    "default_rate": d["default_samplerate"],
                    "default": d["index"] == default_out,
                }
            )
    return rows


def choose_device(wanted: str) -> DeviceChoice:
    """The first output device whose name contains ``wanted`` (any case), else the default."""
    devices = list_output_devices()
    if not devices:
        raise NoDeviceError("no audio output device found")
    pick, matched = None, False
    if wanted:
        needle = wanted.casefold()
        pick = next((d for d in devices if needle in d["name"].casefold()), None)
        matched = pick is not None
    if pick is None:
        pick = next((d for d in devices if d["default"]), devices[0])
    return DeviceChoice(
        pick["index"], pick["name"], pick["hostapi"], pick["channels"], pick["default_rate"], matched
    )


def _default_fatal(reason: str) -> None:
    log.critical(
        "audio could not be recovered (%s); exiting with status %d for a restart", reason, EXIT_AUDIO_FAILED
    )
    logging.shutdown()
    os._exit(EXIT_AUDIO_FAILED)  # not sys.exit: PortAudio's exit path can hang on a dead server


class StreamSupervisor:
    """Opens the output stream for ``mixer`` and keeps it alive (see the module doc)."""

    def __init__(
        self,
        mixer,
        *,
        device: str = "",
        block_size: int = 1024,
        recover_seconds: float = 30.0,
        on_fatal: Callable[[str], None] | None = None,
        on_lost: Callable[[str], None] | None = None,
        on_tick: Callable[[], None] | None = None,
        interval: float = 0.1,
    ) -> None:
        self.mixer = mixer
        self.wanted_device = device
        self.block_size = block_size
        self.recover_seconds = recover_seconds
        self.on_fatal = on_fatal or _default_fatal
        self.on_lost = on_lost
        self.on_tick = on_tick
        self.interval = interval
        block_time = block_size / mixer.sample_rate
        # A callback missing for this long is a stall (generous: a loaded machine is slow).
        self.stall_seconds = max(1.0, 20 * block_time)
        self.stream = None
        self.device: DeviceChoice | None = None
        self.restarts = 0
        self.events: list[tuple[float, str]] = []  # (time.time(), what happened), recent ones
        self.failing_since: float | None = None
        self._generation = 0
        self._finished = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._opened_at = 0.0
        self._callbacks_at_open = 0
        self._next_attempt = 0.0
        self.retry_seconds = RETRY_SECONDS  # the present gap between attempts
        self.lost = False  # on_lost was called for the present outage
        self.rate_mismatch = False  # the last open failed on a device at another rate
        # When the watch loop last came round: a loop stuck in a PortAudio call that never
        # returns (a device that froze) stops turning, and the kiosk's watchdog tells systemd.
        self.turned_at = time.monotonic()

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> bool:
        """Open the stream (True when it plays) and start watching it."""
        ok = self._try_open()
        if not ok:
            self.failing_since = time.monotonic()
        self.turned_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="audio-supervisor", daemon=True)
        self._thread.start()
        return ok

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._generation += 1
        stream, self.stream = self.stream, None
        if not portaudio.close_stream(stream, timeout=2.0):
            log.warning("the audio stream did not close (its device is gone); left open")

    @property
    def healthy(self) -> bool:
        return self.stream is not None and self.failing_since is None

    @property
    def state(self) -> AudioState:
        if self.healthy:
            return AudioState.PLAYING
        return AudioState.NO_DEVICE if self.lost else AudioState.RECOVERING

    def down_seconds(self) -> float:
        """How long the sound has been down (0 while it plays)."""
        return 0.0 if self.failing_since is None else time.monotonic() - self.failing_since

    # -- the watch loop ---------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._check()
                if self.on_tick is not None:
                    self.on_tick()
            except Exception:
                log.exception("audio supervisor check failed")
            self.turned_at = time.monotonic()

    def seconds_since_turn(self) -> float:
        """How long since the watch loop last came round (a tenth of a second when all is well)."""
        return time.monotonic() - self.turned_at

    def _check(self) -> None:
        now = time.monotonic()
        problem = self._problem(now)
        if problem is None:
            if self.failing_since is not None and self._first_callback_seen():
                self._note(
                    f"audio recovered after {now - self.failing_since:.1f} s on {self.device.name!r}",
                    logging.WARNING,
                )
                self.failing_since = None
                self.lost = False
                self.retry_seconds = RETRY_SECONDS
            return
        if self.failing_since is None:
            self.failing_since = now
            self._note(f"audio problem: {problem}", logging.WARNING)
        if self.rate_mismatch:
            # Clips are prepared for the stream's rate: only a fresh process, which opens the
            # device at its own rate, plays this device (systemd restarts it). Waiting longer
            # cannot help, and every other outage keeps the process.
            self.rate_mismatch = False
            self.on_fatal(f"the output device now plays at another rate than {self.mixer.sample_rate} Hz")
            return
        if now - self.failing_since > self.recover_seconds:
            if self.on_lost is None:
                self.on_fatal(f"{problem} for {now - self.failing_since:.0f} s")
                self.failing_since = now  # on_fatal returned (tests, or a caller that carries on)
                return
            if not self.lost:
                self.lost = True
                self._note(
                    f"no sound: {problem} for {now - self.failing_since:.0f} s; still trying, "
                    f"every {MAX_RETRY_SECONDS:.0f} s at most",
                    logging.ERROR,
                )
                self.on_lost(f"{problem} for {now - self.failing_since:.0f} s")
        if self.stream is not None:
            self._drop_stream()
        if portaudio.abandoned_count() >= portaudio.MAX_ABANDONED:
            self.on_fatal("too many PortAudio re-initialisations; a clean process is needed")
            return
        if now >= self._next_attempt and not self._try_open():
            if self.lost:  # past recover_seconds: spread the attempts out
                self.retry_seconds = min(MAX_RETRY_SECONDS, self.retry_seconds * RETRY_BACKOFF)
            self._next_attempt = time.monotonic() + self.retry_seconds

    def _problem(self, now: float) -> str | None:
        if self.stream is None:
            return "no output stream"
        if self._finished.is_set():
            return "the stream finished (device error or closed)"
        try:
            active = self.stream.active
        except Exception as exc:
            return f"the stream cannot be queried ({exc})"
        if not active:
            return "the stream stopped"
        last = max(self.mixer.last_callback, self._opened_at)
        if now - last > self.stall_seconds:
            return f"no audio callback for {now - last:.1f} s"
        return None

    def _first_callback_seen(self) -> bool:
        return self.mixer.callbacks > self._callbacks_at_open

    def _drop_stream(self) -> None:
        self._generation += 1  # the old stream's callback now only writes silence
        stream, self.stream = self.stream, None
        if portaudio.close_stream(stream, timeout=1.0):
            portaudio.reinitialize()
        else:
            log.warning("the old stream hangs (its server is gone); abandoning that PortAudio")
            portaudio.reinitialize(stuck_stream=stream)

    def _try_open(self) -> bool:
        sd = portaudio.sd()
        try:
            device = choose_device(self.wanted_device)
        except NoDeviceError:
            # Nothing to play on yet: re-scan next time (a server or device may appear).
            try:
                portaudio.reinitialize()
            except Exception as exc:
                log.debug("PortAudio re-initialisation failed: %s", exc)
            return False
        if self.wanted_device and not device.matched and self.device is None:
            log.warning(
                "audio device %r not found; using the default output %r", self.wanted_device, device.name
            )
        generation = self._generation + 1
        mixer = self.mixer

        def callback(outdata, frames, time_info, status):
            if generation != self._generation:
                outdata.fill(0)  # a stream being replaced
                return
            mixer.callback(outdata, frames, time_info, status)

        self._finished.clear()
        try:
            stream = sd.OutputStream(
                samplerate=mixer.sample_rate,
                blocksize=self.block_size,
                device=device.index,
                channels=mixer.channels,
                dtype="float32",
                callback=callback,
                finished_callback=self._finished.set,
                # A deep device buffer where the host API has one (ALSA): a late callback is
                # absorbed instead of heard. JACK's latency is the server's period regardless.
                latency="high",
            )
        except Exception as exc:
            # A device that is there but plays another rate (a JACK server restarted at
            # 44.1 kHz) cannot take the clips prepared for this one: PortAudio says so with
            # paInvalidSampleRate, and the (re-scanned) device lists its other rate. PortAudio
            # also says paInvalidSampleRate for a JACK server that is gone, while its stale
            # device entry still lists this rate: that is an outage to wait out.
            self.rate_mismatch = _is_invalid_rate(exc) and int(device.default_rate) != int(mixer.sample_rate)
            log.warning(
                "cannot open %r at %d Hz, %d channels: %s",
                device.name,
                mixer.sample_rate,
                mixer.channels,
                exc,
            )
            if self.rate_mismatch:
                return False  # the device list is right: nothing to re-scan
            try:
                portaudio.reinitialize()
            except Exception as exc2:
                log.debug("PortAudio re-initialisation failed: %s", exc2)
            return False
        self._generation = generation
        self._callbacks_at_open = mixer.callbacks
        self._opened_at = time.monotonic()
        try:
            stream.start()
        except Exception as exc:
            log.warning("cannot start the stream on %r: %s", device.name, exc)
            self._generation += 1
            if portaudio.close_stream(stream):
                portaudio.reinitialize()
            else:
                portaudio.reinitialize(stuck_stream=stream)
            return False
        if self.stream is not None or self.device is not None:
            self.restarts += 1
        self.stream, self.device = stream, device
        self._note(
            f"output stream open on {device.name!r} ({device.hostapi}), "
            f"{mixer.sample_rate} Hz, {mixer.channels} ch, block {self.block_size}"
            + (
                ""
                if device.matched or not self.wanted_device
                else f" (configured {self.wanted_device!r} not found: default device)"
            )
        )
        return True

    def _note(self, what: str, level: int = logging.INFO) -> None:
        """Log an event and keep it for the status view."""
        log.log(level, what)
        self.events.append((time.time(), what))
        del self.events[:-50]
