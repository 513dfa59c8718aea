"""The kiosk keeps its proportions on screens larger than 1920x1080 (installation/kiosk/screen_scale.py):
Qt's scale factor is chosen from the screen before Qt starts, by a real Qt child on the same display."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from installation.kiosk.screen_scale import apply_screen_scale, scale_for, screen_size

ROOT = Path(__file__).resolve().parent.parent


def _offscreen(tmp_path: Path, width: int, height: int) -> str:
    config = tmp_path / f"screen-{width}x{height}.json"
    screen = {"name": "kiosk", "x": 0, "y": 0, "width": width, "height": height, "logicalDpi": 96,
              "logicalBaseDpi": 96, "dpr": 1}  # fmt: skip
    config.write_text(json.dumps({"screens": [screen]}))
    return f"offscreen:configfile={config}"


@pytest.mark.parametrize(
    ("size", "factor"),
    [
        ((1920, 1080), 1.0),
        ((3840, 2160), 2.0),  # 4K: the 1080p layout at the same proportions
        ((2560, 1440), 1.25),  # quarter steps, rounded down: nothing grows past the screen
        ((5120, 2880), 2.5),
        ((1366, 768), 1.0),  # smaller screens keep 1.0: the layouts fit themselves
        ((1080, 1920), 1.0),  # portrait
        ((3840, 1080), 1.0),  # two screens' width, one screen's height
        ((15360, 8640), 4.0),  # capped
    ],
)
def test_the_factor_keeps_the_1080p_proportions(size, factor):
    assert scale_for(*size) == factor


def test_the_screen_is_measured_by_qt_on_the_same_display(tmp_path, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", _offscreen(tmp_path, 3840, 2160))
    monkeypatch.setenv("QT_SCALE_FACTOR", "3")  # the child measures device pixels, unscaled
    assert screen_size() == (3840, 2160)
    monkeypatch.setenv("QT_QPA_PLATFORM", "no-such-platform")
    assert screen_size() is None  # Qt cannot start: the kiosk keeps its sizes, with a warning


def test_auto_sets_the_factor_and_an_installers_choice_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", _offscreen(tmp_path, 3840, 2160))
    monkeypatch.setenv("QT_SCALE_FACTOR", "")  # so that monkeypatch puts the original back
    monkeypatch.delenv("QT_SCALE_FACTOR")
    assert apply_screen_scale(0.0) == 2.0 and os.environ["QT_SCALE_FACTOR"] == "2"
    monkeypatch.setenv("QT_SCALE_FACTOR", "1.5")
    assert apply_screen_scale(0.0) is None and os.environ["QT_SCALE_FACTOR"] == "1.5"
    monkeypatch.delenv("QT_SCALE_FACTOR")
    assert apply_screen_scale(1.0) == 1.0 and "QT_SCALE_FACTOR" not in os.environ  # "none"
    assert apply_screen_scale(1.75) == 1.75 and os.environ["QT_SCALE_FACTOR"] == "1.75"


def test_the_kiosk_on_a_4k_screen_lays_out_as_on_1080p(tmp_path):
    # A fresh process as the kiosk starts: the factor, then the QApplication and a full-screen
    # window; Qt then gives the kiosk 1920x1080 device-independent pixels at a ratio of 2.
    code = (
        "from engine.config import default_config\n"
        "from installation.kiosk.app import create_application\n"
        "from installation.kiosk.screen_scale import apply_screen_scale\n"
        "from PyQt6.QtWidgets import QWidget\n"
        "apply_screen_scale(default_config().kiosk.screen_scale)\n"
        "app = create_application()\n"
        "w = QWidget(); w.setGeometry(app.primaryScreen().geometry()); w.showFullScreen(); app.processEvents()\n"
        "print(w.width(), w.height(), w.devicePixelRatioF())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "QT_SCALE_FACTOR"}
    env.update(QT_QPA_PLATFORM=_offscreen(tmp_path, 3840, 2160), PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    width, height, ratio = done.stdout.split()[-3:]
    assert (int(width), int(height), float(ratio)) == (1920, 1080, 2.0)


def test_thumbnails_are_decoded_for_the_screens_pixels(qapp):
    # On a 4K screen at a scale of 2 a card's thumbnail is decoded at twice its size and drawn
    # at its size: as sharp as the screen, not a 1080p thumbnail enlarged.
    from PyQt6.QtCore import QSize

    from installation.kiosk.thumbnails import decode_thumbnail

    data = (ROOT / "content" / "demo" / "harvest-at-la-crau.png").read_bytes()
    box = QSize(344, 260)
    plain, sharp = decode_thumbnail(data, box, 1.0), decode_thumbnail(data, box, 2.0)
    assert sharp.devicePixelRatio() == 2.0 and plain.devicePixelRatio() == 1.0
    assert (sharp.width(), sharp.height()) == (2 * plain.width(), 2 * plain.height())
    assert sharp.deviceIndependentSize().toSize() == plain.size()  # drawn at the card's size
    assert plain.width() <= box.width() and plain.height() <= box.height()


def test_paintings_are_loaded_for_the_screens_pixels():
    from installation.kiosk.images import screen_side

    assert screen_side(1.0) == 2048  # a 1080p screen: the painting view's largest size
    assert screen_side(2.0) == 4096  # a 4K screen at a scale of 2: as sharp as the screen
    assert screen_side(1.25) == 2560
    assert screen_side(3.0) == 4096 and screen_side(0.5) == 2048  # bounded: memory, and no less than 1080p
