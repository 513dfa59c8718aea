"""The room is never silent: the ambient programme, recorded through JACK (Qt offscreen)."""

from __future__ import annotations

import numpy as np
import pytest
from jack_fixtures import JackRecorder
from kiosk_support import add_clip, artworks, kiosk_config, player, store  # noqa: F401

from installation.kiosk.services import clip_key

pytestmark = [pytest.mark.slow, pytest.mark.audio]


def build(qtbot, store, collection, player, **audio):  # noqa: F811
    import dataclasses

    from installation.kiosk.app import build_window, create_application
    from installation.kiosk.backend import KioskBackend

    create_application()
    config = kiosk_config()
    config.audio = dataclasses.replace(config.audio, **audio)
    config.collection.path = collection
    backend = KioskBackend(config, collection=None, db_path=store.path, player=player)
    window = build_window(backend, config, windowed=True)
    qtbot.addWidget(window)
    window.resize(1920, 1080)
    window.show()
    qtbot.waitExposed(window)
    return window, backend


def close(window, backend) -> None:
    from PyQt6.QtWidgets import QApplication

    QApplication.instance().removeEventFilter(window.filter)
    window.allow_close = True
    window.close()
    window.thumbnails.wait_idle()
    window.playback.pool.waitForDone(5000)
    window.images.pool.waitForDone(5000)
    backend.db.close()


def test_the_room_plays_from_the_first_frame_and_a_visitor_takes_over(
    qtbot,
    jack,
    store,  # noqa: F811
    collection,
    player,  # noqa: F811
):
    art = artworks(store)
    for i, (aid, h) in enumerate(art.values()):
        if i < 3:
            add_clip(store, aid, h, seed=i)
    recorder = JackRecorder(server=jack.name, seconds=20)
    recorder.connect_player()
    recorder.start()
    window, backend = build(qtbot, store, collection, player, ambient_seconds=10.0)
    try:
        first_frame = recorder.frame_time()  # the window is on screen
        qtbot.wait(3500)
        x = recorder.stop()[:, 0]
        start = recorder.index_of_frame(first_frame)
        loud = np.flatnonzero(np.abs(x[start:]) > 1e-3)
        assert loud.size, "the room stayed silent after the kiosk showed its first frame"
        silence = loud[0] / recorder.rate
        print(f"silence after the first frame: {silence:.2f} s")
        assert silence < 3.0
        # It plays one of the ready clips, and the gallery says which.
        playing = window.playback.playing
        assert playing is not None and window.playback.ambient
        assert player.crossfades[-1] == clip_key(playing.clip.id)
        entry = window.model.entry(window.model.row_of(playing.artwork_id))
        assert entry.display_title in window.gallery.now_playing.text()

        # The programme moves on by itself to another ready clip.
        window.playback.ambient_timer.setInterval(200)
        window.playback.ambient_timer.start()
        qtbot.waitUntil(lambda: window.playback.playing.artwork_id != playing.artwork_id, timeout=5000)
        moved_to = window.playback.playing.artwork_id
        assert moved_to in window._ready_artworks()

        # A visitor's choice wins at once and stops the programme.
        chosen = next(a for a in window._ready_artworks() if a != moved_to)
        window.open_artwork(chosen)
        assert not window.playback.ambient and not window.playback.ambient_timer.isActive()
        assert player.crossfades[-1] == clip_key(window.services.own_clip(chosen).clip.id)
        # Back in the gallery, the chosen music plays a full turn before the programme resumes.
        window.show_gallery()
        assert window.playback.ambient
        assert window.playback.ambient_timer.remainingTime() > 9000
    finally:
        recorder.close()
        close(window, backend)


def test_the_programme_starts_when_the_first_clip_lands(qtbot, store, collection, player):  # noqa: F811
    window, backend = build(qtbot, store, collection, player)
    try:
        assert window.playback.ambient and window.playback.playing is None  # nothing ready yet
        aid, h = next(iter(artworks(store).values()))
        add_clip(store, aid, h)
        window.refresh_from_store(wait=True)
        qtbot.waitUntil(lambda: window.playback.playing is not None, timeout=5000)
        assert window.playback.playing.artwork_id == aid
    finally:
        close(window, backend)
