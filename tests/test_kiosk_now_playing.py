"""One "Now playing" on every page, always what the room plays; the change is announced."""

from __future__ import annotations

import logging

from kiosk_support import add_clip, artworks
from PyQt6.QtCore import QPoint, Qt
from PyQt6.QtTest import QTest

from installation.kiosk.now_playing import MusicCue, heading_text, split_caption
from installation.kiosk.services import clip_key
from installation.kiosk.style import Theme


def _room_matches_player(kiosk, player) -> bool:
    room = kiosk.playback.room
    return room is not None and player.now_playing == clip_key(room.clip_id)


def test_after_attract_mode_every_page_names_the_music_the_room_plays(qtbot, kiosk, store, player):
    for i, (aid, h) in enumerate(artworks(store).values()):
        add_clip(store, aid, h, seed=i)
    kiosk.refresh_from_store(wait=True)
    kiosk.enter_attract()
    qtbot.waitUntil(lambda: kiosk.attract.current is not None, timeout=5000)
    shown = kiosk.attract.current[0]
    qtbot.waitUntil(lambda: kiosk.playback.room is not None and kiosk.playback.room.artwork_id == shown.id,
                    timeout=5000)  # fmt: skip
    assert _room_matches_player(kiosk, player)
    assert shown.display_title in kiosk.attract.now_playing

    QTest.mouseClick(kiosk, Qt.MouseButton.LeftButton, pos=QPoint(960, 540))  # back to the gallery
    assert kiosk.page == "gallery"
    room = kiosk.playback.room
    assert _room_matches_player(kiosk, player)
    assert f"“{room.title}”" in kiosk.gallery.now_playing.text()
    assert kiosk.model.playing_id == room.artwork_id  # the card says "Now playing" too


def test_the_screen_says_the_music_is_changing_until_the_crossfade_ends(qtbot, kiosk, store, player, caplog):
    art = artworks(store)
    cafe, cafe_hash = art["cafe-terrace-at-night.png"]
    night, night_hash = art["the-night-cafe.png"]
    add_clip(store, cafe, cafe_hash, seed=1)
    add_clip(store, night, night_hash, seed=2)
    kiosk.refresh_from_store(wait=True)
    kiosk.playback.crossfade_seconds = 0.6
    caplog.set_level(logging.INFO, logger="installation.kiosk")
    kiosk.open_artwork(cafe)
    qtbot.waitUntil(lambda: kiosk.playback.room is not None and kiosk.playback.room.artwork_id == cafe,
                    timeout=5000)  # fmt: skip
    assert kiosk.playback.room.cue == MusicCue.CHANGING
    assert "changing" in kiosk.artwork.cue.text()
    # `art2mus -v kiosk` logs the touch and the crossfade (what the README says the log shows).
    assert f"a visitor opened artwork {cafe}" in caplog.text
    assert "the music of 'Café Terrace at Night'" in caplog.text and "chosen by a visitor" in caplog.text
    qtbot.waitUntil(lambda: kiosk.playback.room.cue == MusicCue.PLAYING, timeout=3000)
    assert kiosk.artwork.cue.text() == ""
    assert kiosk.artwork.now_label.text() == "Now playing"
    assert kiosk.artwork.note.text().startswith("Composed by a computer")
    assert _room_matches_player(kiosk, player)


def test_a_paintings_own_music_replacing_the_stand_in_is_announced(qtbot, kiosk, store, player):
    art = artworks(store)
    cafe, cafe_hash = art["cafe-terrace-at-night.png"]
    add_clip(store, cafe, cafe_hash, seed=1)
    kiosk.refresh_from_store(wait=True)
    target, target_hash = art["langlois-bridge-at-arles.png"]
    kiosk.playback.crossfade_seconds = 5.0
    kiosk.open_artwork(target)
    qtbot.waitUntil(lambda: kiosk.playback.room is not None and kiosk.playback.room.artwork_id == cafe,
                    timeout=5000)  # fmt: skip
    # The stand-in is named as another painting's music.
    assert "Café Terrace" in kiosk.artwork.now_label.text()
    own = add_clip(store, target, target_hash, seed=9)
    kiosk.refresh_from_store(wait=True)
    qtbot.waitUntil(lambda: kiosk.playback.room.clip_id == own, timeout=5000)
    assert kiosk.playback.room.cue == MusicCue.OWN_ARRIVED
    assert "own music is ready" in kiosk.artwork.cue.text()
    assert (
        "The music composed for “The Langlois Bridge at Arles” · Vincent van Gogh is ready"
        in heading_text(kiosk.playback.room)
    )
    kiosk.open_artwork(cafe)  # another painting's own music is no stand-in's replacement
    qtbot.waitUntil(lambda: kiosk.playback.room.artwork_id == cafe, timeout=5000)
    assert kiosk.playback.room.cue == MusicCue.CHANGING
    kiosk.open_artwork(target)
    assert kiosk.artwork.now_label.text() == "Now playing"


def test_captions_split_into_plain_words_and_detail():
    assert split_caption("calm and warm: strings\nslow strings in D minor") == (
        "Calm and warm: strings",
        "slow strings in D minor",
    )
    assert split_caption("A tone chord") == ("A tone chord", "")


def test_no_text_is_smaller_than_the_two_metre_rule():
    theme = Theme(1.0)
    sizes = {role: theme.font(role).pixelSize() for role in
             ("display", "title", "card-title", "caption", "body", "meta", "label", "button", "small", "pin")}  # fmt: skip
    assert min(sizes.values()) >= 23 and max(sizes.values()) <= 64, sizes  # docs/kiosk.md
    assert sizes["small"] >= 24  # the card's status line
