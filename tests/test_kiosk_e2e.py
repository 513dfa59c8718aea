"""End to end: `art2mus kiosk --collection ...` under Xvfb with the JACK dummy device.

The kiosk runs as a subprocess in demo mode (catalog, default engine, player in one
process), locked down full screen on a virtual X display. The test waits until the engine
has composed every clip, records the kiosk's JACK output ports, clicks the first artwork
with xdotool (a real X pointer event), and checks both what the screen shows (a screenshot
grabbed from the X server: the painting is there, large) and that the sound changed from
the room plays music before
and after the touch (the ambient programme, then the visitor's choice).
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from jack_fixtures import JackRecorder

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.slow, pytest.mark.audio]

GRAB = """
import sys
from PyQt6.QtGui import QGuiApplication
app = QGuiApplication(sys.argv[:1])
QGuiApplication.primaryScreen().grabWindow(0).save(sys.argv[1], "PNG")
"""


@pytest.fixture
def xvfb():
    if shutil.which("Xvfb") is None or shutil.which("xdotool") is None:
        pytest.skip("Xvfb and xdotool are needed (apt install xvfb xdotool)")
    read, write = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as f:
        display = ":" + f.readline().strip()  # Xvfb picks a free display and tells us
    yield display
    proc.terminate()
    proc.wait(timeout=10)


def grab(display: str, path: Path) -> np.ndarray:
    env = dict(os.environ, DISPLAY=display, QT_QPA_PLATFORM="xcb")
    subprocess.run([sys.executable, "-c", GRAB, str(path)], env=env, check=True, timeout=60)
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def clips_in(db: Path) -> int:
    """How many paintings have their music (each may have several candidates)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(DISTINCT image_hash) FROM clips").fetchone()[0]
    except sqlite3.Error:
        return 0


def painting_block(screen: np.ndarray) -> tuple[np.ndarray, int] | None:
    """The large non-wall block on the left of the screen and its height (None: only wall)."""
    left = screen[:, : int(screen.shape[1] * 0.62)].astype(np.float32)
    wall = np.array([0x14, 0x13, 0x11], np.float32)
    busy = np.abs(left - wall).sum(axis=2) > 30
    rows, cols = np.where(busy)
    if not len(rows):
        return None
    top, bottom, first, last = rows.min(), rows.max(), cols.min(), cols.max()
    return left[top : bottom + 1, first : last + 1], int(bottom - top)


def painting_correlation(screen: np.ndarray, painting: Path) -> float:
    """How well the large non-wall block on the left of the screen matches the painting."""
    from PIL import Image

    block = painting_block(screen)
    assert block is not None, "the screen shows no painting"
    crop = Image.fromarray(block[0].astype(np.uint8)).convert("L").resize((64, 64))
    ref = Image.open(painting).convert("L").resize((64, 64))
    a, b = np.asarray(crop, np.float32).ravel(), np.asarray(ref, np.float32).ravel()
    assert block[1] > 500, "the painting should be shown large"
    return float(np.corrcoef(a, b)[0, 1])


def screen_changed(screen: np.ndarray, before: np.ndarray) -> bool:
    return bool(np.abs(screen.astype(int) - before.astype(int)).mean() > 5)


def shows_painting(screen: np.ndarray, painting: Path) -> bool:
    block = painting_block(screen)
    return block is not None and block[1] > 500 and painting_correlation(screen, painting) > 0.8


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0


def test_kiosk_demo_click_shows_the_painting_and_changes_the_sound(jack, xvfb, collection, tmp_path):
    db = tmp_path / "demo.db"
    # PYTHONFAULTHANDLER: should the kiosk crash, its log shows every thread's Python stack.
    env = dict(os.environ, DISPLAY=xvfb, QT_QPA_PLATFORM="xcb", PYTHONPATH=str(ROOT), PYTHONFAULTHANDLER="1")
    log = open(tmp_path / "kiosk.log", "wb")  # noqa: SIM115 (the child writes it until the finally below)
    kiosk = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "art2mus",
            "-v",
            "kiosk",
            "--collection",
            str(collection),
            "--db",
            str(db),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    recorder = None
    try:
        deadline = time.monotonic() + 180
        while clips_in(db) < 8:  # the default engine composes every painting's clips
            assert kiosk.poll() is None, (tmp_path / "kiosk.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the demo engine did not compose the clips in time"
            time.sleep(0.5)
        recorder = JackRecorder(server=jack.name, seconds=30)
        recorder.connect_player()
        before = recorder.record(1.0)
        gallery = grab(xvfb, tmp_path / "gallery.png")
        assert gallery.std() > 20, "the gallery screen is blank"

        # The first card (Café Terrace at Night, first by title) sits at the top left.
        painting = collection / "cafe-terrace-at-night.png"
        touched_at = recorder.pos
        recorder.start()
        subprocess.run(["xdotool", "mousemove", "330", "420", "click", "1"], env=env, check=True, timeout=30)
        # Wait for what should happen, not for a fixed time: a busy machine may be slow.
        # The sound: 3 s of recording, the crossfade (audio.crossfade_seconds = 4) under way.
        deadline = time.monotonic() + 20
        while recorder.pos - touched_at < 3 * 48000 and time.monotonic() < deadline:
            time.sleep(0.2)
        after = recorder.stop()
        # The screen: the artwork view with the painting, large.
        deadline = time.monotonic() + 60
        screen = grab(xvfb, tmp_path / "artwork.png")
        while not (screen_changed(screen, gallery) and shows_painting(screen, painting)):
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
            screen = grab(xvfb, tmp_path / "artwork.png")

        assert rms(before) > 1e-3, "the room should play (the ambient programme) before any touch"
        assert rms(after[-48000:]) > 1e-3, "the music stopped after the touch"
        assert screen.std() > 20
        assert screen_changed(screen, gallery), "the screen did not change"
        corr = painting_correlation(screen, painting)
        assert corr > 0.8, f"the artwork view does not show the painting (correlation {corr:.2f})"
        assert kiosk.poll() is None
    finally:
        if recorder is not None:
            recorder.close()
        kiosk.send_signal(signal.SIGTERM)  # systemd's way to stop it
        try:
            code = kiosk.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kiosk.kill()
            code = kiosk.wait()
        log.close()
    assert code == 0, (tmp_path / "kiosk.log").read_text()[-3000:]
