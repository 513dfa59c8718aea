"""Start to first frame of the kiosk with 1,000 artworks (Qt offscreen). Target: < 3 s.

The parent process builds a synthetic store, notes the time, and starts a fresh Python
process that imports the kiosk, starts the real audio player (on a private JACK dummy
server, when jackd is installed), opens the store and shows the gallery; the child reports the
(system-wide monotonic) time when the gallery's first frame with cards has been painted, and
when every visible card shows its thumbnail. So the figure includes interpreter start, all
imports (Qt, SQLAlchemy, numpy), reading 1,000 rows and the first paint.

    PYTHONPATH=. python benchmarks/kiosk_startup.py [--artworks 1000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(db_path: str) -> None:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from kiosk_synthetic import SilentPlayer, open_kiosk, real_player
    from PyQt6.QtCore import QEvent, QObject, QTimer

    marks: dict[str, float] = {}
    player = real_player() if os.environ.get("JACK_DEFAULT_SERVER") else SilentPlayer()
    app, window, backend = open_kiosk(Path(db_path), player=player)
    view = window.gallery.view

    class FirstPaint(QObject):
        def eventFilter(self, obj, event):
            if event.type() == QEvent.Type.Paint and window.model.rowCount() and "first_frame" not in marks:
                QTimer.singleShot(0, lambda: marks.setdefault("first_frame", time.monotonic()))
            return False

    watcher = FirstPaint()
    view.viewport().installEventFilter(watcher)

    def check():
        if "first_frame" in marks:
            rows = [
                r
                for r in range(window.model.rowCount())
                if view.visualRect(window.model.index(r)).intersects(view.viewport().rect())
            ]
            if rows and all(
                window.thumbnails._images.get(window.model.entry(r).id) is not None for r in rows
            ):
                view.viewport().repaint()
                marks["thumbnails"] = time.monotonic()
                marks["visible_cards"] = len(rows)
                print(json.dumps(marks), flush=True)
                window.allow_close = True
                app.quit()

    poll = QTimer()
    poll.timeout.connect(check)
    poll.start(5)
    QTimer.singleShot(20000, app.quit)
    app.exec()
    backend.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artworks", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from kiosk_synthetic import make_store, start_private_jack

    server = f"art2mus-bench-{os.getpid()}"
    jack = start_private_jack(server)
    print("player:", f"real Player on JACK dummy server {server}" if jack else "silent (jackd not installed)")
    try:
        run_all(args, jack, server, make_store)
    finally:
        if jack is not None:
            jack.terminate()
            jack.wait(timeout=10)


def run_all(args, jack, server, make_store) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = make_store(Path(tmp) / "bench.db", args.artworks)
        screen = ROOT / "tests" / "offscreen-1920x1080.json"
        env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={screen}", "PYTHONPATH": str(ROOT)}
        if jack is not None:
            env.update(JACK_DEFAULT_SERVER=server, JACK_NO_START_SERVER="1")
        first, thumbs = [], []
        for run in range(args.runs):
            start = time.monotonic()
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(db)],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            line = next((row for row in out.stdout.splitlines() if row.startswith("{")), None)
            if line is None:
                sys.exit(f"child failed:\n{out.stderr[-3000:]}")
            marks = json.loads(line)
            first.append(marks["first_frame"] - start)
            thumbs.append(marks["thumbnails"] - start)
            print(
                f"run {run + 1}: first frame {first[-1]:.2f} s, "
                f"{marks['visible_cards']} visible thumbnails {thumbs[-1]:.2f} s"
            )
    print(
        f"kiosk start to first frame, {args.artworks} artworks: median {statistics.median(first):.2f} s "
        f"(target < 3 s); all visible thumbnails: median {statistics.median(thumbs):.2f} s"
    )


if __name__ == "__main__":
    main()
