"""Camera capture to first sound, through the kiosk with the real player. Target: < 1 s.

The kiosk (normal mode, offscreen Qt) runs on a store scanned from the demo paintings, each
with a clip, and the real Player on a private JACK dummy server (started here, stopped by its
process id). For each of several paintings that are in no catalog, a camera page is attached
whose camera is a still photograph of it (tests/capture_scenes.py), the capture button is
clicked, and the time until the capture's music sounds is measured (``Player.crossfade_to``
called, or the chosen clip found already playing in the room): detection and checks of
the burst, recognition against the catalog (no match), adding the capture to the
catalog, queueing its job, choosing the nearest ready clip, decoding it when it is not in the
player's cache, and the crossfade call. The fade is then heard from the next audio block.

    PYTHONPATH=. python benchmarks/capture_sound.py [--captures 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

SERVER = f"art2mus-bench-{os.getpid()}"
os.environ["JACK_DEFAULT_SERVER"] = SERVER
os.environ["JACK_NO_START_SERVER"] = "1"
ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault(
    "QT_QPA_PLATFORM", "offscreen:configfile=" + str(ROOT / "tests" / "offscreen-1920x1080.json")
)
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))


def _store(folder: Path) -> Path:
    """The demo collection scanned into a store, a tone clip for every painting."""
    import numpy as np

    from engine.catalog.scanner import scan_collection
    from engine.config import CatalogConfig
    from engine.engines.base import GeneratedClip
    from engine.store import Artwork, Database
    from engine.store.clips import ClipStore

    collection = folder / "collection"
    shutil.copytree(ROOT / "content" / "demo", collection)
    db = Database(folder / "bench.db")
    scan_collection(db, collection, CatalogConfig())

    class _Tone:
        name, model_version = "tone", "tone-1"

        def params(self):
            return {}

    with db.read() as s:
        rows = [(a.id, a.image_hash) for a in s.query(Artwork).all()]
    rate = 24000
    t = np.arange(rate * 20) / rate
    for i, (artwork_id, image_hash) in enumerate(rows):
        mono = (0.1 * np.sin(2 * np.pi * (110 + 20 * i) * t)).astype(np.float32)
        clip = GeneratedClip(np.stack([mono, mono], 1), rate, i, 20.0, caption=f"tone {i}")
        ClipStore(db).put(image_hash=image_hash, artwork_id=artwork_id, engine=_Tone(), clip=clip)
    db.close()
    return folder / "bench.db"


def _sounding(window, view, calls) -> tuple[float, str] | None:
    """(when, clip key) once the capture's music plays: the crossfade to the nearest clip, or
    that clip found already playing (the room's programme had chosen it), else None."""
    outcome = view.page.outcome
    playback = window.playback
    if outcome is None or playback.target != outcome.artwork_id or playback.playing is None:
        return None
    key = playback.playing.key
    if calls:
        return calls[0][0], calls[0][1]
    nearest = window.services.nearest_ready(outcome.artwork_id)
    return (time.perf_counter(), key) if nearest is not None and nearest.key == key else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--captures", type=int, default=5)
    args = parser.parse_args()
    import cv2
    from capture_scenes import make_scene, synthetic_painting
    from kiosk_synthetic import SilentPlayer, open_kiosk, real_player, start_private_jack

    from engine.capture.source import CameraState
    from engine.config import CaptureConfig
    from installation.kiosk.camera_view import attach_camera

    jack = start_private_jack(SERVER)
    try:
        if jack is not None:
            player = real_player()
            kind = f"real Player on JACK dummy server {SERVER}"
        else:
            player, kind = SilentPlayer(), "silent player (jackd not installed)"
        calls: list[tuple[float, str]] = []
        real_crossfade = player.crossfade_to

        def timed_crossfade(clip, seconds=None):
            calls.append((time.perf_counter(), getattr(clip, "key", "")))
            real_crossfade(clip, seconds)

        player.crossfade_to = timed_crossfade
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            db_path = _store(folder)
            app, window, backend = open_kiosk(db_path, player=player, collection=folder / "collection")
            window.idle.stop()
            config = dataclasses.replace(window.config, capture=CaptureConfig(folder=folder / "captures"))
            heard: set[str] = set()
            results = []
            for n in range(args.captures):
                photo = folder / f"camera-{n}.jpg"
                painting = synthetic_painting(folder / f"painting-{n}.png", seed=300 + n)
                cv2.imwrite(str(photo), make_scene(painting, 400 + n).image)
                view = attach_camera(window, str(photo), config)
                view.open()
                deadline = time.perf_counter() + 10
                while (
                    not (view.feed.state is CameraState.LIVE and view.feed.burst())
                    and time.perf_counter() < deadline
                ):
                    app.processEvents()
                    time.sleep(0.005)
                time.sleep(0.3)  # a moment of preview, as a person aims
                app.processEvents()
                calls.clear()
                start = time.perf_counter()
                view.page.capture_button.click()
                sounding = None
                while sounding is None and time.perf_counter() - start < 10:
                    app.processEvents()
                    sounding = _sounding(window, view, calls)
                    time.sleep(0.001)
                assert sounding is not None, f"no sound after capture {n}: {view.page.status.text()}"
                outcome = view.page.outcome
                assert outcome is not None and outcome.recognised is None
                at, key = sounding
                results.append(
                    (
                        (at - start) * 1000,
                        "already playing"
                        if not calls
                        else "decoded now"
                        if key not in heard
                        else "in the player cache",
                    )
                )
                heard.add(key)
                window.show_gallery()  # the next painting gets a camera page of its own
                view.stop()
                view.button.deleteLater()
            print(f"player: {kind}")
            for i, (ms, how) in enumerate(results):
                print(f"capture {i + 1}: the nearest clip sounds after {ms:.0f} ms ({how})")
            values = [ms for ms, _ in results]
            print(
                f"capture button to the nearest clip sounding, {len(values)} captures: median {statistics.median(values):.0f} ms, "
                f"max {max(values):.0f} ms (target < 1000 ms); the fade is heard from the next audio block "
                f"({1000 * 1024 / 48000:.0f} ms at block_size 1024, 48 kHz)"
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
