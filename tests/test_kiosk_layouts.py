"""Every page holds at the screens a museum uses, at every documented text scale.

Gallery, artwork view, attract mode, PIN pad and curator panel, rendered offscreen at
1920x1080, 1366x768, 3840x2160 and portrait 1080x1920, at kiosk.text_scale 1.0, 1.5 and 2.0:
no text cut off, no widget off the screen (installation/kiosk/layout_check.py). Set
KIOSK_LAYOUT_SHOTS=FOLDER to keep a picture of each.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
from kiosk_support import add_clip, artworks, kiosk_config
from PyQt6.QtCore import QSize

from installation.kiosk.layout_check import attract_problems, widget_problems

SCREENS = (QSize(1920, 1080), QSize(1366, 768), QSize(3840, 2160), QSize(1080, 1920))


def open_kiosk(qtbot, store, collection, player, text_scale):
    from installation.kiosk.app import build_window, create_application
    from installation.kiosk.backend import KioskBackend

    create_application()
    config = kiosk_config(text_scale=text_scale)
    config.collection.path = collection
    backend = KioskBackend(config, collection=None, db_path=store.path, player=player)
    window = build_window(backend, config, windowed=False)
    qtbot.addWidget(window)
    return window, backend


def settled_problems(qtbot, window, page, screen: QSize, shot: str) -> list[str]:
    """The page's problems once its layouts have settled (some wrap after a resize)."""
    found: list[str] = []
    for _ in range(3):
        qtbot.wait(80)
        found = widget_problems(window, page, screen)
        if not found:
            break
    folder = os.environ.get("KIOSK_LAYOUT_SHOTS")
    if folder:
        window.grab().save(os.path.join(folder, f"{shot}.png"))
    return found


def pages_on(qtbot, window, screen: QSize, scale: float, subject) -> dict[str, list[str]]:
    size = f"{screen.width()}x{screen.height()}"
    window.resize(screen)
    steps = (
        ("gallery", window.show_gallery, window.gallery),
        ("artwork", lambda: window.open_artwork(subject.id), window.artwork),
        ("pin", window.open_pin_pad, window.pin_pad),
        ("curator", lambda: window.pin_pad.enter("2468"), window.curator),
        ("attract", lambda: (window.show_gallery(), window.enter_attract()), window.attract),
    )
    problems = {}
    for name, show, page in steps:
        show()
        found = settled_problems(qtbot, window, page, screen, f"{name}-{size}-{scale}")
        if found:
            problems[f"{name} {size}"] = found
    for painting in (QSize(4000, 6000), QSize(6000, 3000)):  # a portrait and a landscape
        entry = dataclasses.replace(subject, width=painting.width(), height=painting.height())
        found = attract_problems(window.attract, entry, painting / 3, screen)
        if found:
            problems[f"attract {painting.width()}x{painting.height()} on {size}"] = found
    window.show_gallery()
    return problems


@pytest.mark.slow
@pytest.mark.parametrize("text_scale", [1.0, 1.5, 2.0])
def test_every_page_holds_on_every_screen(qtbot, store, collection, player, text_scale):
    for i, (aid, h) in enumerate(artworks(store).values()):
        if i % 2 == 0:
            add_clip(store, aid, h, seed=i)
    window, backend = open_kiosk(qtbot, store, collection, player, text_scale)
    window.show()
    window.idle.stop()
    window.refresh_from_store(wait=True)
    subject = max(window.model.entries(), key=lambda e: len(e.display_title))  # the longest title
    problems: dict[str, list[str]] = {}
    try:
        for screen in SCREENS:
            problems |= pages_on(qtbot, window, screen, text_scale, subject)
    finally:
        window.allow_close = True
        window.close()
        backend.close()
    assert not problems, "\n".join(f"{k}:\n  " + "\n  ".join(v) for k, v in problems.items())
