"""Recovery after the audio device disappears: the JACK server is killed during playback,
started again, and the time until the player's sound reaches a recording client is measured.
Target: sound again within 3 s of the device coming back.

    PYTHONPATH=. python benchmarks/audio_recovery.py [--trials 5] [--away 1.0]
"""

from __future__ import annotations

import argparse
import time

import audio_common as ac
import numpy as np

from engine.config import AudioConfig
from installation.audio import Player


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--away", type=float, default=1.0, help="seconds the server stays down")
    ap.add_argument("--realtime", action="store_true", help="run jackd with real-time scheduling")
    args = ap.parse_args()
    server = ac.start_server(realtime=args.realtime)
    player = Player(AudioConfig(volume=1.0, recover_seconds=120.0), on_fatal=print)
    back_to_sound, kill_to_sound, positions = [], [], []
    try:
        assert player.start(), "no output"
        player.crossfade_to(player.prepare("a", lambda: ac.ambient_clip(1, seconds=60.0)), 0.5)
        time.sleep(2.0)
        for trial in range(args.trials):
            before = player.position()
            t_kill = time.monotonic()
            server.kill()
            time.sleep(args.away)
            server.start()  # returns once the server answers
            t_back = time.monotonic()
            rec = ac.JackRecorder(server=server.name, seconds=30, name=f"art2mus-rec-{trial}")
            rec.start()
            rec.connect_player(timeout=60)
            deadline = time.monotonic() + 60
            t_sound = None
            while time.monotonic() < deadline and t_sound is None:
                time.sleep(0.01)
                n = rec.pos
                loud = np.nonzero(np.abs(rec.data[:n, 0]) > 1e-4)[0]
                if len(loud):
                    at = loud[0]
                    b = int(np.searchsorted(rec.block_index[: rec.blocks], at, side="right")) - 1
                    t_sound = rec.block_time[b] + (at - rec.block_index[b]) / ac.RATE
            rec.close()
            assert t_sound is not None, "no sound within 60 s"
            back_to_sound.append(t_sound - t_back)
            kill_to_sound.append(t_sound - t_kill)
            positions.append((before, player.position()))
            print(
                f"  trial {trial + 1}: sound {t_sound - t_back:.2f} s after the server was back "
                f"({t_sound - t_kill:.2f} s after the kill); position {before:.1f} s -> "
                f"{player.position():.1f} s",
                flush=True,
            )
            time.sleep(1.0)
        t = player.telemetry()
        print(f"recovery over {args.trials} trials (server away {args.away:g} s):")
        print(
            f"  server back -> sound: {ac.percentiles(back_to_sound)} s "
            f"(target 3 s: {sum(v <= 3.0 for v in back_to_sound)}/{len(back_to_sound)} met it)"
        )
        print(f"  kill -> sound: {ac.percentiles(kill_to_sound)} s; stream restarts {t['restarts']}")
        kept = all(after >= before for before, after in positions)
        print(f"  playback position kept across restarts: {'yes' if kept else 'NO'}")
    finally:
        player.close()
        server.stop()


if __name__ == "__main__":
    main()
