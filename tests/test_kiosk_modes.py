"""Attract mode, the curator's PIN pad and panel, and the lockdown (Qt offscreen)."""

from __future__ import annotations

import os

from kiosk_support import add_clip, artworks
from PyQt6.QtCore import QEvent, QObject, QPoint, Qt
from PyQt6.QtGui import QKeyEvent
from PyQt6.QtTest import QTest
from PyQt6.QtWidgets import QApplication

from installation.kiosk.curator import PinGuard
from installation.kiosk.services import clip_key


def test_idle_leads_to_attract_mode_and_a_touch_leaves_it(qtbot, kiosk, store, player):
    assert kiosk.idle.interval() == int(kiosk.config.kiosk.idle_seconds * 1000)
    art = artworks(store)
    for i, (aid, h) in enumerate(art.values()):
        add_clip(store, aid, h, seed=i)
    kiosk.refresh_from_store(wait=True)
    kiosk.idle.setInterval(300)  # the configured minimum is 5 s; the mechanism is the same
    kiosk.idle.start()

    qtbot.waitUntil(lambda: kiosk.page == "attract", timeout=3000)
    qtbot.waitUntil(lambda: kiosk.attract.current is not None, timeout=5000)
    shown = kiosk.attract.current[0].id
    # The slide's music follows (the ambient programme played before attract mode began).
    want = clip_key(kiosk.services.own_clip(shown).clip.id)
    qtbot.waitUntil(lambda: player.crossfades and player.crossfades[-1] == want, timeout=5000)
    assert not kiosk.playback.ambient  # the slides choose the music while attract mode runs
    assert kiosk.attract.frame_timer.isActive()

    # Any touch wakes the kiosk; the press does not click through to what lies beneath.
    QTest.mouseClick(kiosk, Qt.MouseButton.LeftButton, pos=QPoint(960, 540))
    assert kiosk.page == "gallery"
    assert not kiosk.attract.running
    qtbot.wait(100)
    assert kiosk.page == "gallery"


def test_activity_postpones_attract_mode(qtbot, kiosk):
    kiosk.idle.setInterval(400)
    kiosk.idle.start()
    for _ in range(4):
        qtbot.wait(200)
        QTest.mouseMove(kiosk.gallery.view.viewport(), QPoint(300, 300))
        QTest.mousePress(kiosk.gallery.view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(10, 10))
        QTest.mouseRelease(kiosk.gallery.view.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(10, 10))
    assert kiosk.page == "gallery"


def _long_press(qtbot, window, pos: QPoint, ms: int):
    QTest.mousePress(window, Qt.MouseButton.LeftButton, pos=pos)
    qtbot.wait(ms)
    QTest.mouseRelease(window, Qt.MouseButton.LeftButton, pos=pos)


def test_a_long_press_in_the_corner_opens_the_pin_pad(qtbot, kiosk):
    kiosk.filter.long_press.setInterval(300)  # configured: kiosk.long_press_seconds
    _long_press(qtbot, kiosk, QPoint(20, 20), 100)  # a short press does nothing
    assert kiosk.page == "gallery"
    _long_press(qtbot, kiosk, QPoint(900, 500), 450)  # nor a long press elsewhere
    assert kiosk.page == "gallery"
    _long_press(qtbot, kiosk, QPoint(20, 20), 450)
    assert kiosk.page == "pin"


def test_a_wrong_pin_keeps_the_panel_shut_and_the_right_one_opens_it(qtbot, kiosk):
    kiosk.open_pin_pad()
    pad = kiosk.pin_pad
    for key in "1357":
        qtbot.mouseClick(pad.keys[key], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(pad.keys["OK"], Qt.MouseButton.LeftButton)
    assert kiosk.page == "pin"
    assert "Wrong PIN" in pad.message.text()
    assert not kiosk.curator.isVisible()

    for key in "2468":  # the default PIN
        qtbot.mouseClick(pad.keys[key], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(pad.keys["OK"], Qt.MouseButton.LeftButton)
    assert kiosk.page == "curator"
    assert kiosk.curator.table_model.rowCount() == 8
    assert "default" in kiosk.curator.engine_text.text() or "engine" in kiosk.curator.engine_text.text()
    # The shipped PIN opened it: the panel says so plainly.
    assert kiosk.curator.pin_warning.isVisible()
    assert "the curator PIN is still the shipped default" in kiosk.curator.pin_warning.text()


def test_wrong_pins_are_rate_limited():
    now = [1000.0]
    from engine.config import DEFAULT_PIN_HASH

    guard = PinGuard(DEFAULT_PIN_HASH, clock=lambda: now[0])
    for _ in range(2):
        assert guard.check("0000") == (False, "Wrong PIN. Try again.")
    ok, message = guard.check("0000")
    assert not ok and "Locked for 30 s" in message
    assert guard.check("2468")[0] is False  # even the right PIN waits out the lockout
    now[0] += 31
    ok, message = guard.check("1111")
    assert not ok and "Locked for 60 s" in message  # doubles
    now[0] += 61
    assert guard.check("2468") == (True, "")


def test_curator_panel_shows_status_auditions_and_chooses(qtbot, kiosk, store, player):
    art = artworks(store)
    aid, h = art["church-at-auvers.png"]
    first = add_clip(store, aid, h, seed=1)
    second = add_clip(store, aid, h, seed=2)
    kiosk.refresh_from_store(wait=True)
    kiosk.open_pin_pad()
    assert kiosk.pin_pad.enter("2468")
    panel = kiosk.curator
    row = next(i for i, e in enumerate(panel.table_model.entries) if e.id == aid)
    panel.table.selectRow(row)
    assert panel.clip_list.count() == 2
    assert "Music ready" in panel.selected_status.text()
    panel.clip_list.setCurrentRow(1)
    picked = panel.selected_clip().id
    assert picked == second
    qtbot.mouseClick(panel.audition_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(
        lambda: bool(player.crossfades) and player.crossfades[-1] == clip_key(second), timeout=5000
    )
    qtbot.mouseClick(panel.choose_button, Qt.MouseButton.LeftButton)
    assert kiosk.services.own_clip(aid).clip.id == second
    assert first != second
    panel.volume.setValue(35)
    assert player.volumes[-1] == 0.35


def test_invalid_files_show_their_reason_to_the_curator(qtbot, kiosk, store, collection):
    from engine.catalog.scanner import scan_collection
    from engine.config import default_config

    torn_file = collection / "torn.png"
    torn_file.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    os.utime(torn_file, (1_600_000_000, 1_600_000_000))  # not a file still being copied in
    scan_collection(store, collection, default_config().catalog)
    kiosk.refresh_from_store(wait=True)
    assert kiosk.model.rowCount() == 8  # visitors never see a broken file
    kiosk.open_pin_pad()
    kiosk.pin_pad.enter("2468")
    entries = kiosk.curator.table_model.entries
    torn = next(e for e in entries if e.path == "torn.png")
    assert entries[0] is torn  # problems first
    text = kiosk.curator.table_model.data(kiosk.curator.table_model.index(0, 2))
    assert text.startswith("✕ Invalid file: ") and len(text) > len("✕ Invalid file: ")


class KeySpy(QObject):
    def __init__(self):
        super().__init__()
        self.keys = []

    def eventFilter(self, obj, event):
        if event.type() in (QEvent.Type.KeyPress, QEvent.Type.ShortcutOverride):
            self.keys.append(event.key())
        return False


def test_lockdown_swallows_escape_keys_and_refuses_to_close(qtbot, kiosk):
    app = QApplication.instance()
    spy = KeySpy()
    kiosk.installEventFilter(spy)  # object filters run after the application's filter
    for key, mods in (
        (Qt.Key.Key_F4, Qt.KeyboardModifier.AltModifier),
        (Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier),
        (Qt.Key.Key_Escape, Qt.KeyboardModifier.NoModifier),
    ):
        before = kiosk.filter.swallowed_keys
        app.sendEvent(kiosk, QKeyEvent(QEvent.Type.KeyPress, key, mods))
        assert kiosk.filter.swallowed_keys > before
    assert spy.keys == []  # nothing reached the window
    assert kiosk.close() is False
    assert kiosk.isVisible()
    assert app.overrideCursor() is not None and app.overrideCursor().shape() == Qt.CursorShape.BlankCursor
    assert kiosk.windowFlags() & Qt.WindowType.FramelessWindowHint


def test_only_the_curator_panel_exits(qtbot, kiosk):
    kiosk.open_pin_pad()
    kiosk.pin_pad.enter("2468")
    panel = kiosk.curator
    quits = []
    QApplication.instance().aboutToQuit.connect(lambda: quits.append(1))
    qtbot.mouseClick(panel.exit_button, Qt.MouseButton.LeftButton)
    assert kiosk.isVisible()  # one touch is not enough
    assert panel.exit_button.text() == "Press again to exit"
    qtbot.mouseClick(panel.exit_button, Qt.MouseButton.LeftButton)
    assert not kiosk.isVisible()


def test_quiet_hours_and_volume_from_the_panel_reach_the_player(qtbot, kiosk, player):
    kiosk.open_pin_pad()
    kiosk.pin_pad.enter("2468")
    quiet = kiosk.curator.quiet
    assert quiet.toggle.text() == "Quiet hours: off"
    qtbot.mouseClick(quiet.toggle, Qt.MouseButton.LeftButton)
    schedule = player.inner.schedule  # the running player's schedule was replaced
    assert schedule.describe() == ["09:00-10:00 at 50%"]
    quiet._step("volume", -1)
    quiet._step("end", +1)
    assert player.inner.schedule.describe() == ["09:00-10:30 at 40%"]
    kiosk.curator.volume.setValue(60)
    kiosk.show_gallery()
    kiosk.open_pin_pad()
    kiosk.pin_pad.enter("2468")
    assert kiosk.curator.volume.value() == 60  # the panel remembers the room's volume
    assert kiosk.curator.quiet.toggle.text() == "Quiet hours: on"


def test_text_scale_enlarges_type_and_cards(qtbot):
    from installation.kiosk.style import Theme

    small, large = Theme(1.0), Theme(1.5)
    assert large.font("body").pixelSize() == round(1.5 * small.font("body").pixelSize())
    assert large.card_height > small.card_height and large.card_width >= small.card_width
    assert small.font("meta").pixelSize() >= 23  # readable at about two metres


def test_a_store_refresh_keeps_the_curators_selection(qtbot, kiosk, store):
    art = artworks(store)
    aid, h = art["church-at-auvers.png"]
    add_clip(store, aid, h, seed=1)
    second = add_clip(store, aid, h, seed=2)
    kiosk.refresh_from_store(wait=True)
    kiosk.open_pin_pad()
    kiosk.pin_pad.enter("2468")
    panel = kiosk.curator
    panel.table.selectRow(next(i for i, e in enumerate(panel.table_model.entries) if e.id == aid))
    panel.clip_list.setCurrentRow(1)
    add_clip(store, *art["the-night-cafe.png"])  # the engine writes meanwhile
    kiosk.refresh_from_store(wait=True)
    assert panel.current_entry().id == aid
    assert panel.selected_clip().id == second


def test_the_panel_says_which_engine_the_service_runs_and_why(qtbot, kiosk, store):
    """Normal mode: the engine service's own account (e.g. why Art2Mus did not load)."""
    from engine.store.status import record_engine

    kiosk.open_curator()
    assert "has not started yet" in kiosk.curator.engine_text.text()
    reason = "default engine: the Art2Mus bundle /models/a2m cannot load: unet/config.json is missing"
    record_engine(store, "default", "abc123", reason)
    kiosk.open_curator()
    text = kiosk.curator.engine_text.text()
    assert text.startswith("default: ") and "unet/config.json is missing" in text


def test_the_kiosk_command_refuses_no_display_and_a_bad_size(tmp_path, monkeypatch):
    """`art2mus kiosk` (run as a child process by the slow tests) refuses before any window opens."""
    from click.testing import CliRunner

    from art2mus.cli import main

    config = tmp_path / "art2mus.toml"
    config.write_text("")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["-c", str(config), "kiosk"])
    assert result.exit_code == 1 and "no display: set DISPLAY or WAYLAND_DISPLAY" in result.output
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    result = CliRunner().invoke(main, ["-c", str(config), "kiosk", "--windowed", "--size", "big"])
    assert result.exit_code == 2 and "'big' is not WIDTHxHEIGHT" in result.output


def test_attract_mode_drops_an_artwork_deleted_since_it_began(qtbot, kiosk, store, collection, caplog):
    from engine.catalog.scanner import scan_collection
    from engine.config import default_config

    for i, (aid, h) in enumerate(artworks(store).values()):
        add_clip(store, aid, h, seed=i)
    kiosk.refresh_from_store(wait=True)
    entries = kiosk.model.entries()
    kiosk.attract.start(entries, kiosk._image_path)
    gone = kiosk.attract.entries[1]  # the next slide
    # The curator deletes it while the slideshow runs; the gallery re-reads the catalog.
    (collection / gone.path).unlink()
    scan_collection(store, collection, default_config().catalog)
    kiosk.refresh_from_store(wait=True)
    assert kiosk._image_path(gone.id) is None
    for _ in range(len(entries) + 1):
        kiosk.attract.next_slide()
        qtbot.wait(20)
    assert gone.id not in [e.id for e in kiosk.attract.entries]
    assert len(kiosk.attract.entries) == len(entries) - 1
    assert "cannot show" not in caplog.text  # before: the collection folder, every round
    kiosk.attract.stop()
