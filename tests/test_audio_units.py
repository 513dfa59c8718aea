"""The mixer, preparation, cache, schedule and decoding, without a device."""

from __future__ import annotations

import datetime as dt
import io
import math

import numpy as np
import pytest
import soundfile as sf

from engine.config import AudioConfig, QuietHours
from installation.audio import ClipError, Player, decode_audio, read_audio_file
from installation.audio.mixer import MAX_VOICES, Mixer
from installation.audio.prepare import ClipCache, PreparedClip, prepare_samples
from installation.audio.schedule import QuietSchedule


class Status:
    output_underflow = False


class Underflow:
    output_underflow = True


def dc_clip(key: str, channel: int, channels: int, frames: int = 48000) -> PreparedClip:
    """A clip that is 1.0 on one channel: the output on that channel is the clip's gain."""
    samples = np.zeros((frames, channels), np.float32)
    samples[:, channel] = 1.0
    return PreparedClip(key, samples, 48000, 48000)


def run(mixer: Mixer, frames: int, block: int = 1024) -> np.ndarray:
    out = np.empty((frames, mixer.channels), np.float32)
    for s in range(0, frames, block):
        n = min(block, frames - s)
        mixer.callback(out[s : s + n], n, None, Status())
    return out


def test_crossfade_is_equal_power_sample_by_sample():
    m = Mixer(48000, 2)
    m.crossfade_to(dc_clip("a", 0, 2), 0.0)
    run(m, 2048)
    m.crossfade_to(dc_clip("b", 1, 2), 0.5)  # 24000 frames
    out = run(m, 48000)
    ga, gb = out[:, 0].astype(np.float64), out[:, 1].astype(np.float64)
    assert np.allclose(ga**2 + gb**2, 1.0, atol=1e-5)
    k = np.arange(1, 24001)
    assert np.allclose(gb[:24000], np.sin(np.pi / 2 * k / 24000), atol=1e-5)
    assert np.allclose(ga[:24000], np.cos(np.pi / 2 * k / 24000), atol=1e-5)
    assert np.all(ga[24000:] == 0) and np.all(gb[24000:] == 1)
    assert m.now_playing == "b"


def test_three_quick_taps_keep_the_power_and_end_on_the_last_clip():
    m = Mixer(48000, 4)
    m.crossfade_to(dc_clip("a", 0, 4), 0.0)
    run(m, 1024)
    outs = []
    for key, ch in (("b", 1), ("c", 2), ("d", 3)):
        m.crossfade_to(dc_clip(key, ch, 4), 1.0)
        outs.append(run(m, 4800))  # a tap every 0.1 s
    outs.append(run(m, 48000))
    out = np.concatenate(outs).astype(np.float64)
    power = (out**2).sum(axis=1)
    assert np.allclose(power, 1.0, atol=1e-4)  # no jump in level at any sample
    assert np.abs(np.diff(out, axis=0)).max() < 1e-3  # and no step on any channel
    assert out[-1].tolist() == [0, 0, 0, 1] and m.now_playing == "d"
    assert len(m.retired) == 3  # the faded clips are handed back for release off the callback


def test_loop_wraps_seamlessly_across_blocks():
    samples = np.arange(100, dtype=np.float32)[:, None].repeat(2, axis=1) / 100
    m = Mixer(48000, 2)
    m.crossfade_to(PreparedClip("ramp", samples, 48000, 48000), 0.0)
    out = run(m, 1000, block=256)
    expected = (np.arange(1000) % 100) / 100
    assert np.allclose(out[1:, 0], expected[1:], atol=1e-6)


def test_one_shot_clip_ends_in_silence():
    m = Mixer(48000, 1)
    m.crossfade_to(PreparedClip("s", np.ones((1500, 1), np.float32), 48000, 48000), 0.0, loop=False)
    out = run(m, 4096)
    assert np.all(out[1:1500] == 1) and np.all(out[1500:] == 0)
    assert m.now_playing is None


def test_volume_and_fade_ramps_are_smooth():
    m = Mixer(48000, 1, volume=1.0)
    m.crossfade_to(PreparedClip("one", np.ones((48000, 1), np.float32), 48000, 48000), 0.0)
    run(m, 1024)
    m.set_volume(0.5, 0.5)
    out = run(m, 48000)[:, 0]
    assert abs(out[0] - 1) < 1e-3 and abs(out[-1] - 0.5) < 1e-6
    assert np.all(np.diff(out) <= 1e-7) and np.abs(np.diff(out)).max() < 1e-4
    i = np.argmin(np.abs(out - 0.75))
    assert abs(i - 12000) < 100  # linear: half way at half the ramp
    m.set_fade(0.0, 0.25)
    assert np.all(run(m, 24000)[-100:] == 0)  # faded to silence...
    m.set_fade(1.0, 0.25)
    back = run(m, 24000)[:, 0]
    assert abs(back[-1] - 0.5) < 1e-6 and np.abs(np.diff(back)).max() < 1e-4  # ...and back


def test_callback_never_raises_and_counts_trouble():
    m = Mixer(48000, 2)
    bad = PreparedClip("bad", np.ones((100, 3), np.float32), 48000, 48000)  # wrong channels
    m.crossfade_to(bad, 0.0)
    out = np.full((512, 2), 7.0, np.float32)
    m.callback(out, 512, None, Status())
    assert np.all(out == 0) and m.errors == 1 and "ValueError" in m.last_error
    m.callback(out, 512, None, Underflow())
    assert m.underruns == 1 and m.errors == 1  # the broken voice was dropped
    assert m.callbacks == 2 and m.load_max > 0


def test_voice_storm_never_runs_out_of_slots():
    m = Mixer(48000, 1)
    for i in range(3 * MAX_VOICES):
        m.crossfade_to(PreparedClip(str(i), np.ones((4800, 1), np.float32), 48000, 48000), 5.0)
        run(m, 256)
    out = run(m, 48000 * 6)[:, 0]
    assert abs(out[-1] - 1) < 1e-6 and m.now_playing == str(3 * MAX_VOICES - 1)


def test_big_callbacks_are_rendered_in_passes():
    m = Mixer(48000, 2)
    m.crossfade_to(dc_clip("a", 0, 2), 0.0)
    out = run(m, 20000, block=20000)
    assert np.all(out[1:, 0] == 1) and m.errors == 0


def test_prepare_resamples_and_maps_channels():
    rate = 44100
    t = np.arange(rate) / rate
    pcm = (np.sin(2 * np.pi * 1000 * t) * 20000).astype(np.int16)
    clip = prepare_samples("k", pcm, rate, target_rate=48000, channels=2)
    assert clip.samples.dtype == np.float32 and clip.samples.flags.c_contiguous
    assert not clip.samples.flags.writeable
    assert clip.samples.shape[1] == 2 and abs(clip.frames - 48000) <= 2
    spectrum = np.abs(np.fft.rfft(clip.samples[:, 0]))
    assert abs(np.argmax(spectrum) * 48000 / clip.frames - 1000) < 2
    assert abs(np.abs(clip.samples).max() - 20000 / 32767) < 0.02
    mono = prepare_samples("m", np.ones((100, 3), np.float32), 48000, target_rate=48000, channels=1)
    assert mono.samples.shape == (100, 1)


def test_prepare_refuses_bad_audio_naming_the_clip():
    with pytest.raises(ClipError, match="'empty'"):
        prepare_samples("empty", np.zeros((0, 2), np.float32), 48000, target_rate=48000, channels=2)
    nan = prepare_samples("nan", np.array([np.nan, 1.0], np.float32), 48000, target_rate=48000, channels=1)
    assert np.isfinite(nan.samples).all()


def test_loop_seam_joins_the_end_to_the_start():
    rate, seam = 48000, 4800
    x = np.sin(2 * np.pi * 333.3 * np.arange(rate * 2) / rate).astype(np.float32)  # not loopable
    assert abs(x[-1] - x[0]) > 0.1 or abs((x[-1] - x[-2]) - (x[1] - x[0])) > 0.01
    clip = prepare_samples("s", x, rate, target_rate=rate, channels=1, loop_seam_seconds=seam / rate)
    y = clip.samples[:, 0]
    assert len(y) <= len(x) - seam and (clip.loop_start, clip.loop_end) == (0, len(y))
    wrapped = np.concatenate([y[-50:], y[:50]])
    assert np.abs(np.diff(wrapped, 2)).max() < 0.01  # as smooth as the sine itself


def test_cache_keeps_the_budget_and_what_plays():
    mb = 2**20
    playing = {"a"}
    cache = ClipCache(3 * mb, in_use=lambda: playing)

    def clip(key):
        return PreparedClip(key, np.zeros((mb // 8, 2), np.float32), 48000, 48000)  # 1 MB

    for key in "abcd":
        cache.put(clip(key))
    assert "a" in cache and "b" not in cache and cache.bytes <= 3 * mb
    cache.get("c")
    cache.put(clip("e"))
    assert "a" in cache and "c" in cache and "d" not in cache and "e" in cache


def test_quiet_hours_cross_midnight():
    s = QuietSchedule(
        [
            QuietHours("22:00", "06:30", 0.3),
            QuietHours("09:00", "10:00", 0.5),
            QuietHours("09:30", "09:45", 0.2),
        ]
    )

    def at(hhmm):
        h, m = map(int, hhmm.split(":"))
        return s.factor_at(dt.datetime(2026, 1, 1, h, m))

    assert at("23:59") == 0.3 and at("00:00") == 0.3 and at("06:29") == 0.3
    assert at("06:30") == 1.0 and at("21:59") == 1.0
    assert at("09:10") == 0.5 and at("09:40") == 0.2 and at("10:00") == 1.0


def test_decode_round_trip_and_clear_errors(tmp_path):
    buf = io.BytesIO()
    sf.write(buf, np.zeros((480, 2), np.float32) + 0.25, 48000, format="FLAC")
    audio, rate = decode_audio(buf.getvalue())
    assert rate == 48000 and audio.shape == (480, 2) and abs(audio.mean() - 0.25) < 1e-3
    with pytest.raises(ClipError, match="cannot be decoded"):
        decode_audio(b"not audio at all")
    bad = tmp_path / "notes.wav"
    bad.write_text("hello")
    with pytest.raises(ClipError, match=r"notes.wav"):
        read_audio_file(bad)
    with pytest.raises(ClipError, match=r"missing.flac: file not found"):
        read_audio_file(tmp_path / "missing.flac")


def test_player_refuses_misuse():
    player = Player(AudioConfig())
    clip = prepare_samples("x", np.zeros(10, np.float32), 48000, target_rate=48000, channels=2)
    with pytest.raises(RuntimeError, match="start"):
        player.crossfade_to(clip)
    with pytest.raises(ValueError, match="outside"):
        player.set_volume(1.5)
    assert player.telemetry() == {"running": False}
    assert math.isclose(player.level(), 0.0)


def test_requests_from_many_threads_settle_on_the_last_one():
    import threading

    m = Mixer(48000, 1)
    clips = [PreparedClip(str(i), np.ones((4800, 1), np.float32), 48000, 48000) for i in range(400)]

    def tap(chunk):
        for c in chunk:
            m.crossfade_to(c, 0.01)

    threads = [threading.Thread(target=tap, args=(clips[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run(m, 50000)  # not a whole number of 4800-frame loops: the position is not 0
    assert m.now_playing == m._requested_key and m.now_playing is not None
    assert m.position_frames > 0  # the callback has caught up: a real position, not "pending"


def test_a_wav_loop_marker_round_trips(tmp_path):
    from scipy.io import wavfile

    from engine.loops import Loop, add_wav_loop, read_wav_loop

    path = tmp_path / "clip.wav"
    audio = np.zeros((4800, 2), np.float32)
    wavfile.write(path, 48000, audio)
    assert read_wav_loop(path) is None  # no marker
    add_wav_loop(path, Loop(0, 4800), 48000)
    assert read_wav_loop(path) == Loop(0, 4800)
    data, rate = sf.read(path, always_2d=True)  # still an ordinary WAV to every reader
    assert data.shape == (4800, 2) and rate == 48000
    assert read_wav_loop(tmp_path / "missing.wav") is None


def test_write_float_wav_writes_what_scipy_and_add_wav_loop_write(tmp_path):
    from scipy.io import wavfile

    from engine.loops import Loop, add_wav_loop, read_wav_loop, write_float_wav

    rng = np.random.default_rng(3)
    for audio in (
        rng.standard_normal((4801, 2)).astype(np.float32),
        rng.standard_normal(999).astype(np.float32),
    ):
        ref, ours = tmp_path / "ref.wav", tmp_path / "ours.wav"
        wavfile.write(ref, 48000, audio)
        add_wav_loop(ref, Loop(0, len(audio)), 48000)
        write_float_wav(ours, audio, 48000, Loop(0, len(audio)))
        assert ours.read_bytes() == ref.read_bytes()
        assert read_wav_loop(ours) == Loop(0, len(audio))
        wavfile.write(ref, 44100, audio)
        write_float_wav(ours, audio, 44100)
        assert ours.read_bytes() == ref.read_bytes()


def test_an_engine_clip_is_never_shortened_and_resamples_as_a_loop():
    from engine.loops import Loop, LoopMode

    rng = np.random.default_rng(1)
    x = rng.standard_normal((48000, 2)).astype(np.float32) * 0.1
    same = prepare_samples("e", x, 48000, target_rate=48000, channels=2, loop=LoopMode.WHOLE,
                           loop_seam_seconds=1.0)  # fmt: skip
    assert same.frames == 48000 and np.array_equal(same.samples, x)  # exactly as made
    assert (same.loop_start, same.loop_end) == (0, 48000)
    # At another rate it keeps its length in time, and the wrap is the periodic signal's.
    t = np.arange(24000) / 24000
    loop = (np.sin(2 * np.pi * 3 * t) + 0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None]
    up = prepare_samples("u", loop, 24000, target_rate=48000, channels=1, loop=Loop(0, 24000))
    assert up.frames == 48000 and up.loop_end == 48000
    ideal = np.sin(2 * np.pi * 3 * np.arange(48000) / 48000) + 0.3 * np.sin(
        2 * np.pi * 440 * np.arange(48000) / 48000
    )
    assert np.abs(up.samples[:, 0] - ideal).max() < 2e-3  # no edge ringing at the wrap


def test_a_seam_for_audio_without_a_marker_finds_its_period_and_keeps_the_level():
    rate, seam = 48000, 12000
    n = int(2.3 * rate) + 77
    t = np.arange(n) / rate
    # A sustained chord (whole-sample period 480 frames): the seam joins correlated material,
    # where an equal-power fold would swell by 3 dB.
    x = (0.3 * np.sin(2 * np.pi * 200 * t) + 0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    clip = prepare_samples("c", x, rate, target_rate=rate, channels=1, loop_seam_seconds=seam / rate)
    y = clip.samples[:, 0]
    assert len(y) % 480 == 0, "the loop point should fall on the chord's period"
    looped = np.concatenate([y, y])
    rms = np.sqrt(np.mean(looped[: len(looped) // 480 * 480].reshape(-1, 480) ** 2, axis=1))
    assert 20 * np.log10(rms.max() / rms.min()) < 0.1, "the level changed across the seam"


def test_the_mixer_loops_between_the_clips_loop_points():
    samples = np.arange(400, dtype=np.float32).reshape(-1, 1) / 1000
    clip = PreparedClip("l", samples, 48000, 48000, loop_start=100, loop_end=300)
    mixer = Mixer(48000, 1)
    mixer.crossfade_to(clip, 0.0)
    out = run(mixer, 700, block=64)[:, 0] * 1000
    expected = np.concatenate([np.arange(300), np.arange(100, 300), np.arange(100, 300)])[:700]
    assert np.allclose(out[1:], expected[1:], atol=1e-3)  # (frame 0 is the fade's first step)


def test_a_quiet_hours_boundary_fades_even_with_no_ramp_configured():
    from installation.audio.player import MIN_QUIET_RAMP_SECONDS

    now = [dt.datetime(2026, 1, 1, 8, 59, 59)]
    config = AudioConfig(quiet_hours=[QuietHours("09:00", "10:00", 0.5)], quiet_ramp_seconds=0.0)
    player = Player(config, clock=lambda: now[0], freeze_gc=False)
    player.mixer = Mixer(48000, 1)  # no device: drive the supervisor's tick by hand
    player._tick()
    now[0] = dt.datetime(2026, 1, 1, 9, 0, 1)
    player._next_schedule_check = 0.0
    player._tick()
    clip = PreparedClip("one", np.ones((48000, 1), np.float32), 48000, 48000)
    player.mixer.crossfade_to(clip, 0.0)
    out = run(player.mixer, int(48000 * (MIN_QUIET_RAMP_SECONDS + 0.5)))[:, 0]
    assert out[100] > 0.99 and abs(out[-1] - 0.5) < 1e-6  # from full to the quiet level...
    assert np.abs(np.diff(out)).max() < 1.0 / (48000 * MIN_QUIET_RAMP_SECONDS)  # ...never a step


def test_a_supervisor_stuck_in_a_device_call_stops_turning():
    # The kiosk's watchdog tells systemd when the supervisor's watch loop stops coming round
    # (a call to a frozen device that never returns): here its check blocks until released.
    import threading
    import time

    from installation.audio.supervisor import StreamSupervisor

    supervisor = StreamSupervisor(Mixer(48000, 2), interval=0.02)
    release, entered = threading.Event(), threading.Event()
    calls = []

    def check():
        calls.append(time.monotonic())
        if len(calls) == 3:
            entered.set()
            release.wait(10)

    supervisor._check = check  # type: ignore[method-assign]
    supervisor._thread = threading.Thread(target=supervisor._run, daemon=True)
    supervisor._thread.start()
    try:
        assert entered.wait(5)
        time.sleep(0.5)
        assert supervisor.seconds_since_turn() >= 0.45  # stuck: the loop does not come round
        release.set()
        deadline = time.monotonic() + 5
        while len(calls) < 6:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert supervisor.seconds_since_turn() < 0.2  # turning again
    finally:
        release.set()
        supervisor._stop.set()
        supervisor._thread.join(5)
