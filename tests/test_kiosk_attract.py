"""Attract mode respects the work: whole, not enlarged past the policy, label on the wall."""

from __future__ import annotations

from kiosk_support import add_clip, artworks
from PyQt6.QtCore import QPointF, QRectF, QSizeF

from installation.kiosk.attract import image_rect, label_rect, slide_layout


def _layout(screen, image, native=None, max_zoom=1.5):
    return slide_layout(
        QSizeF(*screen), QSizeF(*image), QSizeF(*native) if native else None,
        margin=88, gap=28, label_below=200, label_width=520, label_beside=300, max_zoom=max_zoom,
    )  # fmt: skip


def test_a_portrait_is_shown_whole_with_its_label_beside_it():
    layout = _layout((1920, 1080), (1000, 1500), native=(4000, 6000))
    assert layout.beside  # a portrait on a landscape screen: the label takes the spare width
    rect = image_rect(layout, QSizeF(1000, 1500), 0.0, None, 0)
    assert rect.height() == 1080 - 2 * 88  # fitted to the height: nothing cropped
    assert not rect.intersects(layout.label)  # never printed on the painting


def test_a_landscape_has_its_label_below_and_small_scans_are_not_blown_up():
    layout = _layout((1920, 1080), (322, 200), max_zoom=1.5)
    assert not layout.beside
    assert layout.scale == 1.5  # the policy's limit, not the 3.9x that would fill the screen
    rect = image_rect(layout, QSizeF(322, 200), 0.0, None, 0)
    assert rect.bottom() <= layout.label.top()
    # The loaded copy may be smaller than the file: the limit is of the file's own pixels.
    big = _layout((3840, 2160), (2048, 1365), native=(6000, 4000), max_zoom=1.0)
    assert big.scale > 1.0  # 2048 px shown larger is still below the file's own size


def test_the_label_stands_by_the_painting_and_the_motion_never_reaches_it():
    screen = QSizeF(1920, 1080)
    for image in (QSizeF(300, 450), QSizeF(450, 300)):  # small scans: much wall around them
        layout = _layout((1920, 1080), (image.width(), image.height()), max_zoom=1.0)
        still = image_rect(layout, image, 0.0, None, 0)
        assert still.width() == image.width()  # never enlarged: the wall around it is wide
        label = label_rect(layout, still, 400, screen, 88, drift=40)
        gap = 40 + 28  # the motion's reach, then the gap
        if layout.beside:
            assert abs(label.left() - (still.right() + gap)) < 1e-6
        else:
            assert abs(label.top() - (still.bottom() + gap)) < 1e-6 and label.left() == still.left()
        for eased in (0.0, 0.5, 1.0):
            for motion in ((QPointF(-1, -1), QPointF(1, 1), True), (QPointF(1, 1), QPointF(1, 1), False)):
                assert not image_rect(layout, image, eased, motion, 40).intersects(label)


def test_motion_stays_inside_the_paintings_area():
    layout = _layout((1920, 1080), (1200, 800))
    area = layout.area
    for eased in (0.0, 0.3, 0.7, 1.0):
        for motion in ((QPointF(-1, -1), QPointF(1, 1), True), (QPointF(1, -1), QPointF(-1, 1), False)):
            rect = image_rect(layout, QSizeF(1200, 800), eased, motion, 40)
            assert area.adjusted(-0.01, -0.01, 0.01, 0.01).contains(rect), (eased, rect, area)
            assert rect.width() <= 1200 * layout.scale + 1e-6


def test_the_kiosk_shows_each_slide_whole_and_still_when_the_policy_says_so(qtbot, kiosk, store):
    for i, (aid, h) in enumerate(artworks(store).values()):
        add_clip(store, aid, h, seed=i)
    kiosk.refresh_from_store(wait=True)
    kiosk.attract.motion_allowed = False
    kiosk.enter_attract()
    qtbot.waitUntil(lambda: kiosk.attract.current is not None, timeout=5000)
    screen = QRectF(kiosk.attract.rect())
    for _ in range(3):
        entry, image = kiosk.attract.current
        first = kiosk.attract.shown_rect()
        qtbot.wait(120)
        assert kiosk.attract.shown_rect() == first  # no motion at all
        # The music starting or changing mid-slide does not move the painting either.
        for playing in (
            "",
            f"♪  Now playing: the music of “{entry.display_title}”",
            "♪  " + "very long " * 12,
        ):
            kiosk.attract.set_now_playing(playing)
            assert kiosk.attract.shown_rect() == first
        assert screen.contains(first)
        label = kiosk.attract.placed_label(entry, image)
        assert not first.intersects(label) and screen.contains(label)
        # Never beyond 1.5x the file's own pixels.
        assert first.width() <= 1.5 * entry.width + 1
        kiosk.attract.next_slide()
        qtbot.waitUntil(lambda shown=entry.id: kiosk.attract.current[0].id != shown, timeout=5000)
    kiosk.show_gallery()
