"""Touch to the start of the crossfade, when the clip is already prepared. Target: < 50 ms.

A synthetic store of 200 artworks (50 with clips) opens in the kiosk (offscreen Qt). The
player is the real one on a private JACK dummy server (started here, stopped by its process
id) when jackd is installed. The clips are prepared into the player's cache first, as they
are after a visitor has heard them once, and the ambient programme's first clip plays, as
it does from the kiosk's first second. Then, for each of the 50 artworks (the one whose
music already plays last, so that each touch changes the music): back to the gallery, a
synthesised left-button click on its card (QTest: press and release go through the event
filter, the QScroller and the list view's clicked signal, as a touch does), and the time
until ``Player.crossfade_to`` is called. From there the mixer starts the fade in its next
audio block (block_size / sample_rate = 21 ms at 1024 frames / 48 kHz).

    PYTHONPATH=. python benchmarks/kiosk_touch.py
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SERVER = f"art2mus-bench-{os.getpid()}"
os.environ["JACK_DEFAULT_SERVER"] = SERVER
os.environ["JACK_NO_START_SERVER"] = "1"
os.environ.setdefault(
    "QT_QPA_PLATFORM",
    "offscreen:configfile="
    + str(Path(__file__).resolve().parent.parent / "tests" / "offscreen-1920x1080.json"),
)
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    from kiosk_synthetic import SilentPlayer, make_store, open_kiosk, real_player, start_private_jack
    from PyQt6.QtCore import Qt
    from PyQt6.QtTest import QTest

    jack = start_private_jack(SERVER)
    try:
        if jack is not None:
            player = real_player()
            kind = f"real Player on JACK dummy server {SERVER}"
        else:
            player, kind = SilentPlayer(), "silent player (jackd not installed)"
        calls: list[float] = []
        real_crossfade = player.crossfade_to

        def timed_crossfade(clip, seconds=None):
            calls.append(time.perf_counter())
            real_crossfade(clip, seconds)

        player.crossfade_to = timed_crossfade
        with tempfile.TemporaryDirectory() as tmp:
            db = make_store(Path(tmp) / "bench.db", 200, with_clips=50, files=Path(tmp) / "collection")
            app, window, backend = open_kiosk(db, player=player, collection=Path(tmp) / "collection")
            window.idle.stop()
            app.processEvents()
            services = backend.services
            ids = [e.id for e in window.model.entries() if services.own_clip(e.id) is not None]
            for i in ids:
                services.prepare(services.own_clip(i))  # as after a first listen
            # The room plays from the first second (the ambient programme): a visitor finds
            # music playing. A touch on the artwork whose music already plays changes nothing
            # (no crossfade is due), so that artwork is touched last, after another one's.
            deadline = time.perf_counter() + 10.0
            while window.playback.playing is None and time.perf_counter() < deadline:
                app.processEvents()
            first = window.playback.playing
            assert first is not None, "the ambient programme played nothing in 10 s"
            ids.sort(key=lambda i: i == first.artwork_id)
            view = window.gallery.view
            latencies = []
            for artwork_id in ids:
                window.show_gallery()
                view.scrollTo(window.model.index(window.model.row_of(artwork_id)))
                app.processEvents()
                rect = view.card_rect(artwork_id)
                playing = window.playback.playing
                assert playing is None or playing.artwork_id != artwork_id, (
                    f"artwork {artwork_id} already plays"
                )
                calls.clear()
                start = time.perf_counter()
                QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
                deadline = start + 2.0
                while not calls and time.perf_counter() < deadline:
                    app.processEvents()
                assert calls, (
                    f"no crossfade for artwork {artwork_id} (touch {len(latencies)}, card {rect}, page {window.page}, viewport {view.viewport().rect()})"
                )
                assert window.page == "artwork"
                latencies.append((calls[0] - start) * 1000)
                app.processEvents()
            ms = np.array(latencies)
            print(f"player: {kind}")
            print(
                f"touch to crossfade_to, cached clip, {len(ms)} touches: median {statistics.median(ms):.1f} ms, "
                f"p95 {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms (target < 50 ms)"
            )
            print(
                f"then the fade begins in the next audio block: "
                f"{1000 * 1024 / 48000:.0f} ms at most with block_size 1024 at 48 kHz"
            )
            window.allow_close = True
            window.close()
            backend.close()
    finally:
        if jack is not None:
            jack.terminate()
            jack.wait(timeout=10)


if __name__ == "__main__":
    main()
