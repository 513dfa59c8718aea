"""The player on a real stream: what leaves the process, recorded by a JACK client.

A private JACK dummy server plays in real time (tests/jack_fixtures.py). Test signals are
sines with whole-sample periods, so the level of each clip can be read off the recording and
any click, gap or repeated block shows as a jump far above a clean sine's.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from audio_signals import F1, F2, F3, F4, RATE, amplitude, first_crossing, max_jump, sine, sine_jump_limit

from engine.config import AudioConfig
from installation.audio import Player

pytestmark = pytest.mark.audio

AMP = 0.5


def make_player(**overrides) -> Player:
    settings = dict(volume=1.0, loop_seam_seconds=0.0, crossfade_seconds=2.0, ramp_seconds=1.0)
    settings.update(overrides)
    return Player(AudioConfig(**settings), on_fatal=lambda reason: None)


@pytest.fixture
def player(jack):
    p = make_player()
    assert p.start(), "the player could not open the JACK dummy device"
    yield p
    p.close()


def clip(player, key, freq, seconds=2.0, amp=AMP):
    """A looping sine clip: whole periods, so the loop itself has no seam."""
    return player.prepare(key, lambda: (sine(freq, seconds, amp), RATE))


def wait_for(condition, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.slow
def test_crossfade_has_the_equal_power_shape(player, recorder):
    recorder.connect_player()
    player.crossfade_to(clip(player, "a", F1), 0.5)
    time.sleep(1.0)
    recorder.start()
    time.sleep(0.5)
    player.crossfade_to(clip(player, "b", F2), 2.0)
    time.sleep(3.0)
    x = recorder.stop()[:, 0]
    ga, t = amplitude(x, F1)
    gb, _ = amplitude(x, F2)
    ga, gb = ga / AMP, gb / AMP
    assert np.all(np.abs(ga**2 + gb**2 - 1) < 0.05), "the level dipped or rose during the crossfade"
    # Fit where the fade began from the point where b reaches half level (sin = 0.5 at 1/3).
    t0 = t[first_crossing(gb, 0.5)] - 2.0 / 3
    inside = (t > t0 + 0.05) & (t < t0 + 1.95)
    phase = np.pi / 2 * (t[inside] - t0) / 2.0
    assert np.abs(gb[inside] - np.sin(phase)).max() < 0.06
    assert np.abs(ga[inside] - np.cos(phase)).max() < 0.06
    assert gb[t > t0 + 2.1].min() > 0.97 and ga[t > t0 + 2.1].max() < 0.03
    # No clicks, gaps or repeated blocks anywhere, including where the fade ends.
    assert max_jump(x) < 2 * sine_jump_limit(F2, AMP)


@pytest.mark.slow
def test_loop_seams_are_gapless(player, recorder):
    recorder.connect_player()
    short = clip(player, "short", F1, seconds=0.25)  # wraps about 4 times a second
    player.crossfade_to(short, 0.5)
    time.sleep(1.0)
    x = recorder.record(3.0)[:, 0]
    assert len(x) > 2.5 * RATE
    assert max_jump(x) < 1.5 * sine_jump_limit(F1, AMP)
    g, _ = amplitude(x, F1)
    assert np.abs(g / AMP - 1).max() < 0.02  # steady level through every wrap
    # What plays is the clip itself, sample for sample, continuing across the seams.
    period = int(RATE / F1)
    assert np.allclose(x[period:], x[:-period], atol=1e-5)


@pytest.mark.slow
def test_volume_ramps_and_fades_are_smooth(player, recorder):
    recorder.connect_player()
    player.crossfade_to(clip(player, "a", F1), 0.5)
    time.sleep(1.0)
    recorder.start()
    time.sleep(0.3)
    player.set_volume(0.25, ramp_seconds=1.0)
    time.sleep(1.5)
    player.fade_out(0.5)
    time.sleep(1.0)
    player.fade_in(0.5)
    time.sleep(1.0)
    x = recorder.stop()[:, 0]
    g, t = amplitude(x, F1)
    g = g / AMP
    start = first_crossing(g, 0.95, rising=False)
    end = first_crossing(g, 0.27, rising=False)
    assert 0.7 < t[end] - t[start] < 1.3, "the volume ramp took the wrong time"
    assert np.all(np.diff(g[start:end]) < 0.01), "the volume ramp was not monotonic"
    silent = first_crossing(g, 0.001, rising=False)
    assert t[silent] > t[end]  # faded to silence after the ramp...
    back = g[silent:]
    assert abs(back[-5:].mean() - 0.25) < 0.01  # ...and back to the volume set before
    assert max_jump(x) < 2 * sine_jump_limit(F1, AMP)


@pytest.mark.slow
def test_three_quick_taps_end_on_the_last_clip_without_a_jump(player, recorder):
    recorder.connect_player()
    clips = [clip(player, k, f) for k, f in (("a", F1), ("b", F2), ("c", F3), ("d", F4))]
    player.crossfade_to(clips[0], 0.5)
    time.sleep(1.0)
    recorder.start()
    time.sleep(0.3)
    for c in clips[1:]:  # three taps, 0.25 s apart, during a 2 s crossfade
        player.crossfade_to(c, 2.0)
        time.sleep(0.25)
    time.sleep(3.0)
    x = recorder.stop()[:, 0]
    gains = np.array([amplitude(x, f)[0] / AMP for f in (F1, F2, F3, F4)])
    power = (gains**2).sum(axis=0)
    assert np.all(np.abs(power - 1) < 0.06), f"level jumped: power {power.min():.3f}..{power.max():.3f}"
    assert gains[3, -10:].min() > 0.97 and gains[:3, -10:].max() < 0.03
    assert player.now_playing == "d"
    assert max_jump(x) < 2 * sine_jump_limit(F4, AMP)


def test_level_spectrum_and_telemetry_follow_the_output(player, recorder):
    recorder.connect_player()
    player.crossfade_to(clip(player, "a", F4), 0.2)
    wait_for(lambda: player.level() > 0.45, what="the level to rise")
    assert abs(player.level() - AMP) < 0.05  # RMS of a sine, scaled so a full sine reads 1 x amp
    bands = player.spectrum(16)
    edges = np.geomspace(40, 16000, 17)
    loud = int(np.argmax(bands))
    assert edges[loud] <= F4 <= edges[loud + 1] and bands[loud] > 0.8
    t = player.telemetry()
    assert t["device"] == "system" and "JACK" in t["hostapi"] and t["sample_rate"] == RATE
    assert t["healthy"] and t["callback_errors"] == 0 and t["callbacks"] > 10
    assert 0 < t["callback_load"] < 0.5 and t["now_playing"] == "a"
    assert t["seconds_since_supervisor"] < 1.0  # its watch loop comes round (the watchdog reads it)
    ok, line = player.health()
    assert ok and "system" in line


def test_device_chosen_by_name_with_fallback(jack):
    p = make_player(device="SYST")  # any case, part of the name
    assert p.start()
    assert p.telemetry()["device_matched"] is True
    p.close()
    p = make_player(device="USB Audio That Is Not Here")
    assert p.start()
    t = p.telemetry()
    assert t["device"] == "system" and t["device_matched"] is False
    assert any("not found" in e for e in t["events"])
    p.close()


def test_quiet_hours_lower_the_volume_at_start(jack, recorder):
    from engine.config import QuietHours

    p = Player(
        AudioConfig(
            volume=1.0,
            loop_seam_seconds=0.0,
            quiet_hours=[QuietHours("00:00", "23:59", 0.5), QuietHours("23:59", "00:00", 0.5)],
        ),
        on_fatal=lambda reason: None,
    )
    assert p.start()
    try:
        recorder.connect_player()
        p.crossfade_to(clip(p, "a", F1), 0.2)
        time.sleep(0.8)
        g, _ = amplitude(recorder.record(0.5)[:, 0], F1)
        assert abs(g.mean() / AMP - 0.5) < 0.02
        assert p.telemetry()["quiet_hours_level"] == 0.5
    finally:
        p.close()
