"""The gallery and the artwork view on a real store (Qt offscreen)."""

from __future__ import annotations

import shutil
import threading

from kiosk_support import add_clip, artworks
from PyQt6.QtCore import Qt
from PyQt6.QtTest import QTest

from engine.catalog.scanner import scan_collection
from engine.config import default_config
from engine.store.jobs import PRIORITY_VISITOR, JobQueue
from installation.kiosk.services import MusicState, clip_key


def touch_card(qtbot, window, artwork_id):
    view = window.gallery.view
    row = window.model.row_of(artwork_id)
    view.scrollTo(window.model.index(row))
    rect = window.gallery.view.card_rect(artwork_id)
    assert rect.isValid() and view.viewport().rect().intersects(rect)
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_gallery_lists_the_collection_with_music_status(kiosk, store):
    titles = [e.title for e in kiosk.model.entries()]
    assert len(titles) == 8
    assert "The Night Café" in titles
    assert titles == sorted(titles, key=str.lower)
    assert {e.music for e in kiosk.model.entries()} == {MusicState.WAITING}


def test_touching_an_artwork_plays_its_clip(qtbot, kiosk, store, player):
    art = artworks(store)
    cafe_id, cafe_hash = art["cafe-terrace-at-night.png"]
    clip_id = add_clip(store, cafe_id, cafe_hash, seed=3)
    kiosk.refresh_from_store(wait=True)

    touch_card(qtbot, kiosk, cafe_id)

    qtbot.waitUntil(lambda: player.crossfades == [clip_key(clip_id)], timeout=5000)
    assert kiosk.page == "artwork"
    assert kiosk.artwork.title.text() == "Café Terrace at Night"
    assert kiosk.artwork.caption.text() == "A tone chord on 131 Hz"
    assert kiosk.model.playing_id == cafe_id
    # The full painting arrives from the loader thread and replaces the thumbnail preview.
    qtbot.waitUntil(lambda: not kiosk.artwork.painting.preview and kiosk.artwork.painting.image is not None)
    assert kiosk.artwork.painting.image.width() > 400


def test_a_cached_clip_starts_inside_the_touch(qtbot, kiosk, store, player):
    art = artworks(store)
    aid, h = art["the-night-cafe.png"]
    clip_id = add_clip(store, aid, h)
    kiosk.refresh_from_store(wait=True)
    kiosk.services.prepare(kiosk.services.own_clip(aid))  # already decoded in the player's cache

    kiosk.open_artwork(aid)
    assert player.crossfades == [clip_key(clip_id)]  # no event loop turn needed


def test_missing_clip_plays_the_nearest_and_swaps_in_the_real_one(qtbot, kiosk, store, player):
    art = artworks(store)
    ready = {name: art[name] for name in ("cafe-terrace-at-night.png", "harvest-at-la-crau.png")}
    clips = {name: add_clip(store, aid, h, seed=i) for i, (name, (aid, h)) in enumerate(ready.items())}
    kiosk.refresh_from_store(wait=True)
    target_id, target_hash = art["langlois-bridge-at-arles.png"]

    kiosk.open_artwork(target_id)

    qtbot.waitUntil(lambda: len(player.crossfades) == 1, timeout=5000)
    assert player.crossfades[0] in {clip_key(c) for c in clips.values()}
    # Which one is the nearest is decided by the catalog's image descriptors.
    choice = kiosk.services.nearest_ready(target_id)
    assert player.crossfades[0] == clip_key(choice.clip.id)
    assert not choice.own and -1.0 <= choice.similarity <= 1.0
    assert "Composing this painting" in kiosk.artwork.composing.text()
    job = JobQueue(store).latest_for(target_id)
    assert job is not None and job.priority == PRIORITY_VISITOR and job.status == "queued"

    own = add_clip(store, target_id, target_hash, seed=7)  # the engine delivers
    kiosk.refresh_from_store(wait=True)
    qtbot.waitUntil(lambda: player.crossfades[-1] == clip_key(own), timeout=5000)
    assert kiosk.artwork.composing.text() == ""


def test_thumbnails_are_decoded_off_the_ui_thread(qtbot, kiosk):
    threads = []
    fetch = kiosk.thumbnails._fetch
    kiosk.thumbnails._fetch = lambda i: (threads.append(threading.current_thread()), fetch(i))[1]
    kiosk.thumbnails.invalidate()
    kiosk.gallery.view.viewport().repaint()
    qtbot.waitUntil(lambda: len(kiosk.thumbnails._images) >= 4, timeout=5000)
    assert threads and all(t is not threading.main_thread() for t in threads)
    image = next(iter(kiosk.thumbnails._images.values()))
    assert 0 < image.width() <= kiosk.thumbnails.size.width()


def test_a_file_added_to_the_collection_appears_in_the_gallery(
    qtbot, kiosk, store, collection, demo_paintings
):
    view = kiosk.gallery.view
    view.verticalScrollBar().setValue(200)
    position = view.verticalScrollBar().value()
    shutil.copy(demo_paintings[0], collection / "a-new-acquisition.png")
    summary = scan_collection(store, collection, default_config().catalog)  # as the engine service does
    assert summary.added == 1

    qtbot.waitUntil(lambda: kiosk.model.rowCount() == 9, timeout=5000)  # the store poll
    assert any(e.path == "a-new-acquisition.png" for e in kiosk.model.entries())
    assert view.verticalScrollBar().value() == position  # the visitor's place is kept
    assert "9 works" in kiosk.gallery.subtitle.text()


def test_a_touched_card_shows_it_was_pressed(qtbot, kiosk):
    view = kiosk.gallery.view
    entry = kiosk.model.entries()[1]
    rect = view.card_rect(entry.id)
    QTest.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.waitUntil(lambda: view.itemDelegate().pressed_row == 1, timeout=2000)
    view.viewport().repaint()
    pressed = view.viewport().grab(rect).toImage().pixelColor(10, 10)
    QTest.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert view.itemDelegate().pressed_row == -1
    kiosk.show_gallery()
    view.viewport().repaint()
    normal = view.viewport().grab(rect).toImage().pixelColor(10, 10)
    assert pressed.lightness() > normal.lightness()  # the mat lights up under the finger
