"""The player survives its audio server dying: it recovers, or gives up to systemd.

The JACK server is killed (SIGKILL, as in a crash) during playback and started again. The clip
is a sine whose amplitude rises steadily through the clip, so the level recorded after the
restart tells where in the clip playback resumed.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from audio_signals import F1, RATE, amplitude, sine_jump_limit
from jack_fixtures import JackRecorder

from engine.config import AudioConfig
from installation.audio import Player, portaudio

pytestmark = [pytest.mark.audio, pytest.mark.slow, pytest.mark.own_process]

SECONDS = 40.0


def rising_sine() -> np.ndarray:
    """F1 with an amplitude going from 0.1 to 0.9 over the clip: level = position."""
    t = np.arange(int(SECONDS * RATE)) / RATE
    return ((0.1 + 0.8 * t / SECONDS) * np.sin(2 * np.pi * F1 * t)).astype(np.float32)


def longest_clean_run(x: np.ndarray, limit: float) -> int:
    """Length of the longest stretch of ``x`` with no jump above ``limit``."""
    jumps = np.nonzero(np.abs(np.diff(x.astype(np.float64), 2)) > limit)[0]
    edges = np.concatenate([[0], jumps, [len(x)]])
    return int(np.diff(edges).max())


def level_at(position: float) -> float:
    return 0.1 + 0.8 * position / SECONDS


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def test_recovers_after_the_jack_server_restarts(jack):
    fatal: list[str] = []
    player = Player(
        AudioConfig(volume=1.0, loop_seam_seconds=0.0, recover_seconds=60.0), on_fatal=fatal.append
    )
    assert player.start()
    recorder = JackRecorder(server=jack.name)
    try:
        recorder.connect_player()
        player.crossfade_to(player.prepare("rise", lambda: (rising_sine(), RATE)), 0.5)
        time.sleep(4.0)
        before = recorder.record(1.0)[:, 0]
        recorder.close()
        position_before = player.position()
        level_before = amplitude(before, F1)[0][-3:].mean()
        assert abs(level_before - level_at(position_before)) < 0.03

        jack.kill()
        wait_for(lambda: not player.supervisor.healthy, 10, "the supervisor to notice")
        time.sleep(1.0)  # the server stays away for a while
        jack.start()
        wait_for(
            lambda: player.supervisor.healthy and player.supervisor.restarts >= 1, 30, "the player to recover"
        )

        recorder = JackRecorder(server=jack.name, name="art2mus-recorder-2")
        recorder.connect_player()
        time.sleep(0.5)
        after = recorder.record(1.5)[:, 0]
        position_after = player.position()
        levels = amplitude(after, F1)[0]
        # Sound again, continuous, at the level of the position playback had reached.
        assert len(after) > RATE and levels.min() > 0.1
        # Continuous sound: a loaded machine may drop a block as the graph changes, but the
        # sound must run on unbroken for most of the recording.
        assert longest_clean_run(after, 2 * sine_jump_limit(F1, 0.9)) > 1.0 * RATE
        assert position_before < position_after < position_before + 4.0
        assert abs(levels[-3:].mean() - level_at(position_after)) < 0.03
        assert levels[0] >= level_before - 0.02  # it did not start the clip again
        t = player.telemetry()
        assert t["restarts"] >= 1 and t["healthy"] and not fatal
        assert any("recovered" in e for e in t["events"])
    finally:
        recorder.close()
        player.close()


def test_gives_up_when_the_server_stays_away(jack):
    fatal: list[str] = []
    player = Player(AudioConfig(volume=1.0, recover_seconds=2.0), on_fatal=fatal.append)
    assert player.start()
    try:
        jack.kill()
        wait_for(lambda: fatal, 20, "the supervisor to give up")
        assert "for" in fatal[0]  # says what failed and for how long
        assert not player.supervisor.healthy
    finally:
        jack.start()
        player.close()


def test_starts_without_a_device_and_plays_once_one_appears(jack):
    jack.kill()
    player = Player(AudioConfig(volume=1.0, recover_seconds=60.0), on_fatal=lambda r: None)
    try:
        assert player.start() is False  # no server yet: the kiosk still starts
        time.sleep(0.5)
        jack.start()
        wait_for(lambda: player.supervisor.healthy, 30, "the player to find the server")
        assert player.telemetry()["device"] == "system"
    finally:
        player.close()


def test_recovers_from_a_stalled_device(jack):
    """The server freezes (SIGSTOP): no callbacks while the stream still reports itself
    active. The supervisor must notice the stall and get the sound going again once the
    server runs again (SIGCONT)."""
    import os
    import signal

    fatal: list[str] = []
    player = Player(
        AudioConfig(volume=1.0, loop_seam_seconds=0.0, recover_seconds=60.0), on_fatal=fatal.append
    )
    assert player.start()
    try:
        player.crossfade_to(player.prepare("rise", lambda: (rising_sine(), RATE)), 0.5)
        time.sleep(2.0)
        position_before = player.position()
        os.kill(jack.pid, signal.SIGSTOP)
        try:
            wait_for(lambda: not player.supervisor.healthy, 15, "the stall to be noticed")
        finally:
            time.sleep(0.5)
            os.kill(jack.pid, signal.SIGCONT)
        wait_for(lambda: player.supervisor.healthy, 30, "the player to recover")
        recorder = JackRecorder(server=jack.name, name="art2mus-recorder-3")
        try:
            recorder.connect_player()
            time.sleep(0.5)
            levels = amplitude(recorder.record(1.0)[:, 0], F1)[0]
        finally:
            recorder.close()
        assert levels.min() > 0.1 and player.position() > position_before
        assert any("no audio callback" in e for e in player.telemetry()["events"])
        assert not fatal
    finally:
        player.close()


def test_a_device_back_at_another_rate_asks_for_a_fresh_process(jack):
    """The server returns at 44.1 kHz: clips are prepared for 48 kHz, so the player says so and
    hands over to systemd (on_fatal: the kiosk exits 75 and is started afresh at the new rate)
    instead of playing at the wrong speed or failing silently."""
    fatal: list[str] = []
    player = Player(AudioConfig(volume=1.0, recover_seconds=60.0), on_fatal=fatal.append)
    assert player.start()
    try:
        player.crossfade_to(player.prepare("rise", lambda: (rising_sine(), RATE)), 0.5)
        wait_for(lambda: player.supervisor.healthy and player.now_playing, 10, "the player to play")
        jack.kill()
        wait_for(lambda: not player.supervisor.healthy, 10, "the supervisor to notice")
        jack.rate = 44100
        jack.start()
        wait_for(lambda: fatal, 30, "the supervisor to ask for a fresh process")
        assert "another rate than 48000 Hz" in fatal[0], fatal
        assert not player.supervisor.healthy  # it did not play 48-kHz clips at 44.1 kHz
    finally:
        player.close()
        jack.kill()
        jack.rate = RATE
        jack.start()
        # This process's PortAudio still lists the 44.1-kHz server: re-scan, so that the next
        # test's player finds the device as it is (a fresh process, as systemd starts, would).
        portaudio.reinitialize()
