"""Playback under a busy main thread: a crossfade every 5 s, UI-like work and gc.collect().

The main thread does what a kiosk's does at its worst: builds and drops many Python objects,
scales images with numpy, collects garbage, while a worker thread prepares (resamples) new
clips. Target: zero underruns; the callback load is printed.

    PYTHONPATH=. python benchmarks/audio_soak.py [--minutes 10] [--interval 5]
"""

from __future__ import annotations

import argparse
import gc
import json
import threading
import time

import audio_common as ac
import numpy as np

from engine.config import AudioConfig
from installation.audio import Player


def ui_work(rng: np.random.Generator) -> None:
    """About 20-50 ms of the kind of work a Qt UI thread does between events: Python object
    churn, a small JSON message, an image scaled with numpy.

    Not here on purpose: one C call that holds the GIL for longer than about 10 ms (json.dumps
    of 3,000 records takes 20 ms on this machine; a full gc.collect() of an unfrozen kiosk
    heap 30 ms). The callback cannot run meanwhile, and a 21 ms block underruns.
    """
    items = [{"id": i, "title": f"Artwork {i}", "tags": [str(j) for j in range(8)]} for i in range(3000)]
    json.dumps(items[:100])
    image = rng.integers(0, 255, (540, 960, 3), dtype=np.uint8)
    small = image[::2, ::2].astype(np.float32) * 0.8
    small.clip(0, 255).astype(np.uint8)
    del items, image, small


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between crossfades")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--idle", action="store_true", help="no UI load (for comparison)")
    ap.add_argument("--no-worker", action="store_true", help="no clip preparation during the run")
    ap.add_argument("--realtime", action="store_true", help="run jackd with real-time scheduling")
    args = ap.parse_args()
    server = ac.start_server(realtime=args.realtime)
    player = Player(AudioConfig(volume=0.8, crossfade_seconds=4.0, cache_megabytes=128), on_fatal=print)
    try:
        assert player.start(), "no output"
        watcher = ac.JackRecorder(server=server.name, seconds=1, name="art2mus-xrun-watch")
        keys = [f"clip-{i}" for i in range(args.clips)]
        for i, key in enumerate(keys if args.no_worker else keys[:2]):
            player.prepare(key, lambda i=i: ac.ambient_clip(i))
        player.crossfade_to(player.prepare(keys[0], lambda: ac.ambient_clip(0)))
        time.sleep(2.0)
        base = player.telemetry()
        xruns0 = watcher.xruns
        stop = threading.Event()

        def worker() -> None:  # prepares the clips one after another, like the kiosk's loader
            i = 2
            while not stop.is_set():
                player.prepare(keys[i % len(keys)], lambda i=i: ac.ambient_clip(i % len(keys)))
                i += 1
                stop.wait(3.0)

        if not args.no_worker:
            threading.Thread(target=worker, daemon=True).start()
        rng = np.random.default_rng(0)
        end = time.monotonic() + args.minutes * 60
        next_fade = time.monotonic() + args.interval
        fades = ui_rounds = 0
        report = time.monotonic() + 60
        while time.monotonic() < end:
            if not args.idle:
                ui_work(rng)
                ui_rounds += 1
                if ui_rounds % 10 == 0:
                    gc.collect()
            now = time.monotonic()
            if now >= next_fade:
                key = keys[(fades + 1) % len(keys)]
                clip = player.prepare(key, lambda k=key: ac.ambient_clip(keys.index(k)))
                player.crossfade_to(clip)
                fades += 1
                next_fade += args.interval
            if now >= report:
                t = player.telemetry()
                print(
                    f"  {(args.minutes * 60 - (end - now)) / 60:4.1f} min: underruns "
                    f"{t['underruns'] - base['underruns']}, load {t['callback_load_recent']:.2%} "
                    f"(max {t['callback_load_max']:.1%}), crossfades {fades}",
                    flush=True,
                )
                report += 60
            time.sleep(0.25 if args.idle else 0.005)
        stop.set()
        t = player.telemetry()
        print(
            f"soak: {args.minutes:g} min, crossfade every {args.interval:g} s ({fades} crossfades), "
            f"main thread busy ({ui_rounds} UI rounds, gc.collect() every 10)"
        )
        print(
            f"  underruns during the run: {t['underruns'] - base['underruns']} "
            f"(JACK xruns seen by a second client: {watcher.xruns - xruns0}; "
            f"{base['underruns']} during start-up)"
        )
        print(
            f"  callback load: mean {t['callback_load']:.2%}, max {t['callback_load_max']:.1%}; "
            f"callbacks {t['callbacks']}, errors {t['callback_errors']}, restarts {t['restarts']}"
        )
        watcher.close()
    finally:
        player.close()
        server.stop()


if __name__ == "__main__":
    main()
