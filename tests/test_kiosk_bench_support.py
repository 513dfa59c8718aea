"""The kiosk benchmarks' stand-in player (benchmarks/kiosk_synthetic.py) takes the kiosk's calls.

Without jackd, ``kiosk_touch``, ``kiosk_startup`` and ``capture_sound`` play on ``SilentPlayer``.
When it falls behind the real Player's contract (``prepare(..., loop=)``, ``close(fade_seconds=)``),
the ambient programme's first clip never starts and closing the kiosk logs an error, so the
benchmarks stop or measure a kiosk that is not the real one. Real Qt widgets (offscreen), a real SQLite store.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import kiosk_support  # noqa: F401  (the 1920x1080 offscreen screen, before Qt loads)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
# benchmarks/ is not a package: the test uses the benchmarks' own helpers, not a copy.
from kiosk_synthetic import SilentPlayer, make_store, open_kiosk


def test_the_silent_player_plays_the_ambient_programme_and_closes(qtbot, caplog, tmp_path: Path):
    collection = tmp_path / "collection"
    db = make_store(tmp_path / "bench.db", 6, with_clips=3, files=collection)
    player = SilentPlayer()
    app, window, backend = open_kiosk(db, player=player, collection=collection)
    try:
        # The room plays from the first second: the programme's first clip is prepared on a
        # worker thread, then crossfaded in.
        qtbot.waitUntil(lambda: bool(player.crossfade_times), timeout=5000)
        assert window.playback.playing is not None
        assert player.is_prepared(window.playback.playing.key)
    finally:
        app.removeEventFilter(window.filter)
        window.allow_close = True
        window.close()
        window.playback.pool.waitForDone(5000)
    backend.close()  # leaving fades out (Player.close's fade_seconds)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not errors, errors
