"""Screenshots of the kiosk's camera page for docs/: the live preview and a capture playing.

Runs the real demo mode (catalog watcher, default engine in its child process, player) on a
copy of content/demo, with the camera page attached to a camera that is a photograph of a
painting in no catalog (made by tests/capture_scenes.py: framed, on a wall, at an angle). It
draws on an Xvfb display when Xvfb is installed (started here, stopped by its process id),
else on Qt's offscreen screen; the player plays to a private JACK dummy server when jackd is
installed. The capture is taken once some clips are ready, so that the nearest one plays
while the engine composes the capture's own.

    PYTHONPATH=. python scripts/capture_screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = f"art2mus-shots-{os.getpid()}"
os.environ["JACK_DEFAULT_SERVER"] = SERVER
os.environ["JACK_NO_START_SERVER"] = "1"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))


def start_xvfb() -> subprocess.Popen | None:
    """An Xvfb display for Qt's xcb platform, or None (then Qt draws offscreen)."""
    if shutil.which("Xvfb") is None:
        os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={ROOT / 'tests' / 'offscreen-1920x1080.json'}"
        return None
    display = f":{90 + os.getpid() % 100}"
    proc = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    os.environ["DISPLAY"] = display
    os.environ["QT_QPA_PLATFORM"] = "xcb"
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    xvfb = start_xvfb()
    from kiosk_synthetic import start_private_jack

    jack = start_private_jack(SERVER)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            shoot(Path(tmp), args.out)
    finally:
        for proc in (jack, xvfb):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)


def shoot(tmp: Path, out: Path) -> None:
    import dataclasses

    import cv2
    from capture_scenes import make_scene, synthetic_painting

    from engine.capture.source import CameraState
    from engine.config import CaptureConfig, default_config
    from installation.kiosk.app import build_window, create_application
    from installation.kiosk.backend import KioskBackend
    from installation.kiosk.camera_view import attach_camera
    from installation.kiosk.services import MusicState

    collection = tmp / "collection"
    shutil.copytree(ROOT / "content" / "demo", collection)
    photo = tmp / "camera.jpg"
    cv2.imwrite(str(photo), make_scene(synthetic_painting(tmp / "new-painting.png", seed=21), 5).image)

    app = create_application()
    config = default_config()
    config = dataclasses.replace(config, capture=CaptureConfig(folder=tmp / "captures"))
    backend = KioskBackend(config, collection=collection, db_path=tmp / "demo.db", demo=True)
    window = build_window(backend, config, windowed=True)
    window.resize(1920, 1080)
    window.show()
    backend.start()
    camera = attach_camera(window, str(photo), config)

    def wait(seconds: float, until=lambda: False) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not until():
            app.processEvents()
            time.sleep(0.02)

    def save(name: str) -> None:
        wait(0.3)
        path = out / f"capture-{name}.png"
        window.grab().save(str(path), "PNG")
        print(f"saved {path}")

    ready = lambda: sum(e.music == MusicState.READY for e in window.model.entries())  # noqa: E731
    wait(240, lambda: window.model.rowCount() == 8 and ready() >= 3)
    window.idle.stop()
    camera.open()
    wait(10, lambda: camera.feed.state is CameraState.LIVE and camera.page.preview.outline is not None)
    wait(1)
    save("preview")

    camera.page.capture()
    wait(10, lambda: camera.page.outcome is not None)
    wait(6, lambda: "Composing" in camera.page.composing.text())
    save("playing")  # the nearest clip plays while the engine composes (a second or two)
    wait(60, lambda: "own music" in camera.page.composing.text())
    wait(2)
    save("own-music")

    camera.stop()
    window.allow_close = True
    window.close()
    backend.close()


if __name__ == "__main__":
    main()
