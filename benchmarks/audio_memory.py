"""Memory over many crossfades: does the player's footprint stay flat?

Each crossfade goes to a clip that the cache may have to prepare again (more clips than the
cache budget holds), so preparation, eviction and the mixer's retire path are all exercised.
By default this performs an hour's worth of crossfades (one every 5 s = 720) at an
accelerated pace; --minutes M runs in real time for M minutes instead.

    PYTHONPATH=. python benchmarks/audio_memory.py                 # 720 crossfades, fast
    PYTHONPATH=. python benchmarks/audio_memory.py --minutes 60    # a real hour
"""

from __future__ import annotations

import argparse
import gc
import time

import audio_common as ac

from engine.config import AudioConfig
from installation.audio import Player


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=None, help="real-time run of this length")
    ap.add_argument("--crossfades", type=int, default=720, help="accelerated: this many")
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--realtime", action="store_true", help="run jackd with real-time scheduling")
    args = ap.parse_args()
    if args.minutes is not None:
        interval, count, fade = 5.0, int(args.minutes * 60 / 5.0), 4.0
    else:
        interval, count, fade = 0.4, args.crossfades, 0.3
    server = ac.start_server(realtime=args.realtime)
    # A budget for about 8 of the 24 clips (each ~5.5 MB at 48 kHz stereo, 15 s).
    player = Player(AudioConfig(volume=0.8, cache_megabytes=48), on_fatal=print)
    sources = {i: ac.ambient_clip(i, seconds=15.0) for i in range(args.clips)}
    try:
        assert player.start(), "no output"
        warm = min(60, count // 4)
        samples = []
        t0 = time.monotonic()
        for n in range(count):
            key = f"clip-{n % args.clips}"
            clip = player.prepare(key, lambda k=n % args.clips: sources[k])
            player.crossfade_to(clip, fade)
            time.sleep(interval)
            if n + 1 == warm:
                gc.collect()
                base = ac.rss_mb()
                print(f"after {warm} crossfades (warm-up): RSS {base:.1f} MB", flush=True)
            if n + 1 > warm and (n + 1) % 60 == 0:
                samples.append(ac.rss_mb())
                print(
                    f"  {n + 1:4d} crossfades, {(time.monotonic() - t0) / 60:5.1f} min: RSS "
                    f"{samples[-1]:.1f} MB, cache {player.telemetry()['cache_megabytes']:.0f} MB",
                    flush=True,
                )
        gc.collect()
        end = ac.rss_mb()
        t = player.telemetry()
        pace = "real time" if args.minutes is not None else f"accelerated, every {interval:g} s"
        print(
            f"memory: {count} crossfades ({pace}, {(time.monotonic() - t0) / 60:.1f} min), "
            f"{args.clips} clips through a {player.config.cache_megabytes} MB cache"
        )
        print(
            f"  RSS after warm-up {base:.1f} MB, at the end {end:.1f} MB: growth "
            f"{end - base:+.2f} MB (max seen {max([*samples, end]):.1f} MB)"
        )
        print(
            f"  underruns {t['underruns']}, callback errors {t['callback_errors']}, "
            f"cache {t['cache_clips']} clips / {t['cache_megabytes']:.0f} MB"
        )
    finally:
        player.close()
        server.stop()


if __name__ == "__main__":
    main()
