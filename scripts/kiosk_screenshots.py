"""Screenshots of the kiosk for docs/: gallery, artwork view, attract mode, PIN pad, curator panel.

Runs the real demo mode (catalog watcher, default engine, player) on a copy of content/demo
with one deliberately broken file and a catalog.csv row naming no image added (so the
curator panel shows an invalid file, a metadata problem and their reasons). The player plays
to a private JACK dummy server when jackd is installed (started here and stopped by its
process id), so the music visual shows real output.

First the five pages at 1920x1080 (docs/kiosk-*.png); then every page at 1920x1080,
1366x768, 3840x2160 and portrait 1080x1920, at text scales 1.0, 1.5 and 2.0, one contact
sheet per page (docs/screens/kiosk-layouts-PAGE.png; columns: screens, rows: text scales).
Each page is checked as it is shot (installation/kiosk/layout_check.py): the script fails
if any text is cut off or any widget leaves the screen.

On a virtual X screen (what the docs' pictures are made with):

    xvfb-run -a -s "-screen 0 3840x2160x24" env PYTHONPATH=. python scripts/kiosk_screenshots.py

Without DISPLAY it renders offscreen. ``--out DIR`` writes elsewhere; ``--no-layouts`` skips
the contact sheets.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVER = f"art2mus-shots-{os.getpid()}"
os.environ["JACK_DEFAULT_SERVER"] = SERVER
os.environ["JACK_NO_START_SERVER"] = "1"
if not os.environ.get("DISPLAY"):
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={ROOT / 'tests' / 'offscreen-1920x1080.json'}"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--no-layouts", action="store_true", help="only the five 1920x1080 pictures")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    from kiosk_synthetic import start_private_jack

    jack = start_private_jack(SERVER)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            problems = shoot(Path(tmp), args.out, layouts=not args.no_layouts)
        if problems:
            sys.exit("layout problems:\n" + "\n".join(problems))
    finally:
        if jack is not None:
            jack.terminate()
            jack.wait(timeout=10)


def shoot(tmp: Path, out: Path, *, layouts: bool) -> list[str]:
    from engine.config import default_config
    from installation.kiosk.app import build_window, create_application
    from installation.kiosk.backend import KioskBackend
    from installation.kiosk.services import MusicState

    collection = tmp / "collection"
    shutil.copytree(ROOT / "content" / "demo", collection)
    broken = collection / "unfinished-scan.tif"
    broken.write_bytes(b"II*\x00" + b"\x00" * 64)  # a TIFF header and nothing else
    os.utime(broken, (1_600_000_000, 1_600_000_000))
    (collection / "catalog.csv").write_text("file,title\nlost-sketch.jpg,A Lost Sketch\n")

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
    wait(6)  # the painting loads, the music fades in (4 s), the visual follows it
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
    window.deleteLater()
    wait(0.2)

    problems = (
        layout_sheets(app, backend, config, entries["the-night-cafe.png"], out / "screens") if layouts else []
    )
    backend.close()
    return problems


SCREENS = ((1920, 1080), (1366, 768), (3840, 2160), (1080, 1920))
SCALES = (1.0, 1.5, 2.0)
PAGES = ("gallery", "artwork", "attract", "pin", "curator")
TILE = 480  # the longer side of a picture on a contact sheet


def layout_sheets(app, backend, config, subject, out: Path) -> list[str]:
    """Every page at every screen and text scale, checked, on one contact sheet per page."""
    import dataclasses

    from PyQt6.QtCore import QSize, Qt
    from PyQt6.QtGui import QColor, QFont, QImage, QPainter

    from installation.kiosk.app import build_window
    from installation.kiosk.layout_check import widget_problems

    out.mkdir(parents=True, exist_ok=True)
    shots: dict[tuple[str, float, tuple[int, int]], QImage] = {}
    problems = []
    for scale in SCALES:
        scaled = dataclasses.replace(config, kiosk=dataclasses.replace(config.kiosk, text_scale=scale))
        window = build_window(backend, scaled, windowed=True)
        window.show()
        window.idle.stop()
        window.refresh_from_store(wait=True)
        steps = {
            "gallery": (window.show_gallery, window.gallery),
            "artwork": (lambda w=window: w.open_artwork(subject.id), window.artwork),
            "pin": (window.open_pin_pad, window.pin_pad),
            "curator": (lambda w=window: w.pin_pad.enter("2468"), window.curator),
            "attract": (lambda w=window: (w.show_gallery(), w.enter_attract()), window.attract),
        }
        for width, height in SCREENS:
            window.resize(width, height)
            for page in ("gallery", "artwork", "pin", "curator", "attract"):
                show, widget = steps[page]
                show()
                settle(app, 1.5 if page == "attract" else 0.6)
                found = widget_problems(window, widget, QSize(width, height))
                problems += [f"{page} {width}x{height} at {scale}: {p}" for p in found]
                shots[(page, scale, (width, height))] = (
                    window.grab()
                    .toImage()
                    .scaled(
                        TILE,
                        TILE,
                        Qt.AspectRatioMode.KeepAspectRatio,
                        Qt.TransformationMode.SmoothTransformation,
                    )
                )
            window.show_gallery()
        window.allow_close = True
        window.close()
        window.deleteLater()
        settle(app, 0.2)
    label_h, gap = 40, 16
    for page in PAGES:
        sheet = QImage(len(SCREENS) * (TILE + gap) + gap, len(SCALES) * (TILE + label_h + gap) + gap,
                       QImage.Format.Format_RGB32)  # fmt: skip
        sheet.fill(QColor("#0b0a09"))
        painter = QPainter(sheet)
        font = QFont("DejaVu Sans")
        font.setPixelSize(20)
        painter.setFont(font)
        painter.setPen(QColor("#bdb6aa"))
        for row, scale in enumerate(SCALES):
            for col, (width, height) in enumerate(SCREENS):
                x, y = gap + col * (TILE + gap), gap + row * (TILE + label_h + gap)
                painter.drawText(x, y + 26, f"{width}×{height}, text scale {scale}")
                painter.drawImage(x, y + label_h, shots[(page, scale, (width, height))])
        painter.end()
        path = out / f"kiosk-layouts-{page}.png"
        sheet.save(str(path), "PNG")
        print(f"saved {path}")
    return problems


def settle(app, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


if __name__ == "__main__":
    main()
