"""The screen survives the sound card: the kiosk stays up, says so, and plays again."""

from __future__ import annotations

import dataclasses
import time

import pytest
from kiosk_support import add_clip, artworks, kiosk_config, store  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.audio, pytest.mark.own_process]


def test_the_kiosk_stays_up_without_a_sound_card_and_plays_when_one_returns(
    qtbot,
    jack,
    store,  # noqa: F811
    collection,
):
    from PyQt6.QtWidgets import QApplication

    from installation.audio.supervisor import AudioState
    from installation.kiosk.app import build_window, create_application
    from installation.kiosk.backend import KioskBackend

    aid, h = next(iter(artworks(store).values()))
    add_clip(store, aid, h)
    create_application()
    config = kiosk_config()
    config.audio = dataclasses.replace(config.audio, recover_seconds=1.0)
    config.collection.path = collection
    backend = KioskBackend(config, collection=None, db_path=store.path)  # its own real player
    window = build_window(backend, config, windowed=True)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    player = backend.player
    try:
        qtbot.waitUntil(lambda: player.supervisor.healthy and player.now_playing, timeout=10000)
        jack.kill()
        # Past recover_seconds the process used to exit (status 75) and take the screen with it.
        qtbot.waitUntil(lambda: player.supervisor.state == AudioState.NO_DEVICE, timeout=15000)
        qtbot.wait(1500)
        assert window.isVisible()
        window.open_curator()
        window.curator.refresh_status()
        text = window.curator.telemetry_text.text()
        assert "NO SOUND" in text and "keeps trying" in text, text
        assert any("no sound" in e for e in player.telemetry()["events"])
        assert player.supervisor.retry_seconds > 0.25  # backing off

        jack.start()
        deadline = time.monotonic() + 30
        while not player.supervisor.healthy:
            assert time.monotonic() < deadline, "the kiosk did not play again when the device returned"
            qtbot.wait(100)
        assert player.supervisor.state == AudioState.PLAYING and player.now_playing
        window.curator.refresh_status()
        assert "NO SOUND" not in window.curator.telemetry_text.text()
    finally:
        jack.ensure_running()
        QApplication.instance().removeEventFilter(window.filter)
        window.allow_close = True
        window.close()
        window.thumbnails.wait_idle()
        window.playback.pool.waitForDone(5000)
        window.images.pool.waitForDone(5000)
        backend.close()


def test_leaving_the_kiosk_fades_the_room_out(jack, store):  # noqa: F811
    """Closing the backend (curator exit, SIGTERM) fades the sound; it used to cut in 50 ms."""
    import numpy as np
    from audio_signals import F1, RATE, amplitude, max_jump, sine, sine_jump_limit
    from jack_fixtures import JackRecorder

    from installation.kiosk.backend import EXIT_FADE_SECONDS, KioskBackend

    config = kiosk_config()
    config.audio = dataclasses.replace(config.audio, volume=1.0)
    backend = KioskBackend(config, collection=None, db_path=store.path)
    player = backend.player
    recorder = JackRecorder(server=jack.name, seconds=15)
    try:
        recorder.connect_player()
        player.crossfade_to(player.prepare("s", lambda: (sine(F1, 2.0, 0.5), RATE)), 0.2)
        time.sleep(1.0)
        recorder.start()
        time.sleep(0.5)
        backend.close()
        time.sleep(0.3)
        x = recorder.stop()[:, 0]
    finally:
        recorder.close()
    level, t = amplitude(x, F1)
    assert level[: int(0.3 / (t[1] - t[0]))].min() > 0.45  # full level before
    loud = t[level > 0.4]
    quiet = t[level < 0.02]
    fade = quiet[quiet > loud[0]][0] - loud[-1]
    print(f"exit fade: from 80% to 4% of the level in {fade:.2f} s")
    assert fade > 0.5 * EXIT_FADE_SECONDS, "the sound was cut, not faded"
    assert max_jump(x) < 2 * sine_jump_limit(F1, 0.5)  # and no click at the end
    assert np.abs(x[-RATE // 10 :]).max() < 1e-3  # silent at the end
