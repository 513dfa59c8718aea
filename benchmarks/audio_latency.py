"""Latency from Player.crossfade_to(clip) to the clip's first samples in the output.

A JACK recording client connected to the player's ports timestamps every block it receives;
the new clip (a constant level, after silence) is found in the recording. Target: at most one
block plus 5 ms when the clip is prepared.

    PYTHONPATH=. python benchmarks/audio_latency.py [--trials 40]
"""

from __future__ import annotations

import argparse
import random
import time

import audio_common as ac
import numpy as np

from engine.config import AudioConfig
from installation.audio import Player


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--realtime", action="store_true", help="run jackd with real-time scheduling")
    args = ap.parse_args()
    server = ac.start_server(realtime=args.realtime)
    player = Player(AudioConfig(volume=1.0, loop_seam_seconds=0.0), on_fatal=print)
    try:
        assert player.start(), "no output"
        block = player.config.block_size
        rec = ac.JackRecorder(server=server.name, seconds=args.trials * 1.0 + 10)
        rec.connect_player()
        silence = player.prepare("silence", lambda: (np.zeros((ac.RATE, 2), np.float32), ac.RATE))
        level = player.prepare("level", lambda: (np.full((ac.RATE, 2), 0.5, np.float32), ac.RATE))
        player.crossfade_to(silence, 0.0)
        time.sleep(0.5)
        rec.start()
        latencies = []
        for _ in range(args.trials):
            time.sleep(0.25 + random.random() * 0.05)  # land anywhere within a block
            first_block = rec.blocks
            t_call = time.monotonic()
            player.crossfade_to(level, 0.5)
            time.sleep(0.15)
            x = rec.data[rec.block_index[first_block] : rec.pos, 0]
            onset = int(np.argmax(np.abs(x) > 1e-6))
            assert np.abs(x[onset]) > 1e-6, "the new clip never appeared"
            at = rec.block_index[first_block] + onset
            b = int(np.searchsorted(rec.block_index[: rec.blocks], at, side="right")) - 1
            # The block arrived at block_time[b]; the sample sits (at - block start) frames in.
            t_sample = rec.block_time[b] + (at - rec.block_index[b]) / ac.RATE
            latencies.append((t_sample - t_call) * 1000)
            player.crossfade_to(silence, 0.0)
            time.sleep(0.05)
        rec.stop()
        target = block / ac.RATE * 1000 + 5
        t = player.telemetry()
        print(
            f"crossfade_to -> first samples at the JACK recorder, {args.trials} trials, "
            f"block {block} at {ac.RATE} Hz ({block / ac.RATE * 1000:.1f} ms)"
        )
        print(f"  latency ms: min {min(latencies):.1f}, {ac.percentiles(latencies)}")
        print(
            f"  target <= {target:.1f} ms: {sum(v <= target for v in latencies)}/{len(latencies)} trials met it"
        )
        print(
            f"  underruns {t['underruns']}, callback load {t['callback_load']:.2%} (max {t['callback_load_max']:.1%})"
        )
        rec.close()
    finally:
        player.close()
        server.stop()


if __name__ == "__main__":
    main()
