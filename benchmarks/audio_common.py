"""Shared by the audio benchmarks: a private JACK dummy server, a recorder, test clips.

Import this module before anything imports sounddevice: it names the JACK server that
PortAudio will connect to.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import jack_fixtures

SERVER_NAME = f"art2mus-bench-{os.getpid()}"
os.environ["JACK_DEFAULT_SERVER"] = SERVER_NAME

import numpy as np

JackServer = jack_fixtures.JackServer
JackRecorder = jack_fixtures.JackRecorder
RATE = jack_fixtures.RATE


def start_server(realtime: bool = False) -> JackServer:
    """The benchmark's JACK server; ``realtime`` schedules its threads (and the clients'
    process threads) SCHED_FIFO, as an exhibition PC would, where the machine permits."""
    server = JackServer(name=SERVER_NAME, realtime=realtime)
    server.start()
    print(
        f"JACK dummy server {SERVER_NAME}: {'real-time' if realtime else 'no real-time'} "
        f"scheduling, {server.rate} Hz, period {server.period}"
    )
    return server


def ambient_clip(seed: int, seconds: float = 30.0, rate: int = 44100) -> tuple[np.ndarray, int]:
    """A stereo clip with the texture of ambient music (chords of partials, slow swells, noise),
    at 44.1 kHz so that preparing it includes resampling."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    out = np.zeros((len(t), 2), np.float32)
    for _ in range(6):
        f = 110 * 2 ** (rng.integers(0, 24) / 12)
        swell = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2) * t + rng.uniform(0, 6))
        pan = rng.uniform(0.2, 0.8)
        tone = (swell * np.sin(2 * np.pi * f * t)).astype(np.float32) * 0.08
        out[:, 0] += tone * (1 - pan)
        out[:, 1] += tone * pan
    out += rng.normal(0, 0.005, out.shape).astype(np.float32)
    return out, rate


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def percentiles(values, ps=(50, 95, 100)) -> str:
    arr = np.asarray(values, float)
    return ", ".join(f"p{p} {np.percentile(arr, p):.1f}" for p in ps)


import logging

logging.basicConfig(level=logging.WARNING, format="  [log] %(levelname)s %(name)s: %(message)s")
