"""Screenshots of the kiosk for docs/: gallery, artwork view, attract mode, PIN pad, curator panel.

Runs the real demo mode (catalog watcher, default engine, player) on a copy of content/demo
with one deliberately broken file added (so the curator panel shows an invalid file and its
reason), on an offscreen 1920x1080 screen. The player plays to a private JACK dummy server
when jackd is installed (started here and stopped by its process id), so the music visual
shows real output.

    PYTHONPATH=. python scripts/kiosk_screenshots.py [--out docs]
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
os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={ROOT / 'tests' / 'offscreen-1920x1080.json'}"
sys.path.insert(0, str(ROOT))


def start_jack():
    if shutil.which("jackd") is None:
        return None
    proc = subprocess.Popen(
        ["jackd", "-n", SERVER, "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "1024"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        if subprocess.run(["jack_lsp", "-s", SERVER], capture_output=True).returncode == 0:
            return proc
        time.sleep(0.1)
    proc.terminate()
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    jack = start_jack()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            shoot(Path(tmp), args.out)
    finally:
        if jack is not None:
            jack.terminate()
            jack.wait(timeout=10)


def shoot(tmp: Path, out: Path) -> None:
    from engine.config import default_config
    from installation.kiosk.app import build_window, create_application
    from installation.kiosk.backend import KioskBackend
    from installation.kiosk.services import MusicState

    collection = tmp / "collection"
    shutil.copytree(ROOT / "content" / "demo", collection)
    broken = collection / "unfinished-scan.tif"
    broken.write_bytes(b"II*\x00" + b"\x00" * 64)  # a TIFF header and nothing else
    os.utime(broken, (1_600_000_000, 1_600_000_000))

    app = create_application()
    config = default_config()
    backend = KioskBackend(config, collection=collection, db_path=tmp / "demo.db", demo=True)
    window = build_window(backend, config, windowed=True)  # a cursor-less offscreen window
    window.resize(1920, 1080)
    window.show()
    backend.start()

    def wait(seconds: float, until=lambda: False) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not until():
            app.processEvents()
            time.sleep(0.02)

    def save(name: str) -> None:
        wait(0.3)
        path = out / f"kiosk-{name}.png"
        window.grab().save(str(path), "PNG")
        print(f"saved {path}")

    wait(
        180,
        lambda: (
            window.model.rowCount() == 8 and all(e.music == MusicState.READY for e in window.model.entries())
        ),
    )
    window.idle.stop()
    entries = {e.path: e for e in window.model.entries()}

    window.open_artwork(entries["the-night-cafe.png"].id)
    wait(4)  # the painting loads, the music fades in, the visual follows it
    save("artwork")

    window.open_artwork(entries["cafe-terrace-at-night.png"].id)  # a card says "Now playing"
    wait(1)
    window.show_gallery()
    wait(2, lambda: len(window.thumbnails._images) >= 8)
    save("gallery")
    window.open_artwork(entries["the-night-cafe.png"].id)

    window.enter_attract()
    wait(8)  # past the first dissolve, into the slow drift
    save("attract")

    window.show_gallery()
    window.open_pin_pad()
    for digit in "24":
        window.pin_pad.press(digit)
    save("pin")
    window.pin_pad.press("Clear")
    window.pin_pad.enter("2468")
    panel = window.curator
    row = next(i for i, e in enumerate(panel.table_model.entries) if e.path == "church-at-auvers.png")
    panel.table.selectRow(row)
    wait(1.5)
    save("curator")

    window.allow_close = True
    window.close()
    backend.close()


if __name__ == "__main__":
    main()
