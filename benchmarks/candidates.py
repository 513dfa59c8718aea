"""Is the default engine fast enough to make more than one candidate per artwork?

``engine.candidates = K`` makes K clips per artwork (the curator chooses among them). A job's
candidates are made in one batch (``engine.batch_size``), so a visitor waiting for a
painting's music waits for all K. This runs the real worker over the demo collection on a
real SQLite file, with the default engine on one core, for K = 1, 2 and 3, and prints the
seconds per artwork (wall and CPU: the CPU figure is the honest one on a shared machine)
and for the whole collection.

The target: a visitor's painting gets its music within 5 s of CPU on one core (the kiosk
plays the nearest painting's music meanwhile), and the demo collection is ready within a
minute.

Run:  PYTHONPATH=. python benchmarks/candidates.py [--duration 30]
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[var] = "1"

import argparse
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_PER_ARTWORK_S = 5.0
TARGET_COLLECTION_S = 60.0


def run(candidates: int, duration: float, engine) -> tuple[float, float, int, int]:
    """(wall s, CPU s, artworks, clips) for the demo collection with ``candidates``."""
    from engine.catalog.scanner import scan_collection
    from engine.config import default_config
    from engine.store import Database
    from engine.worker import Worker

    with tempfile.TemporaryDirectory() as tmp:
        collection = Path(tmp) / "demo"
        shutil.copytree(ROOT / "content" / "demo", collection)
        config = default_config()
        config.collection.path = collection
        config.engine.name = "default"
        config.engine.duration = duration
        config.engine.candidates = candidates
        db = Database(Path(tmp) / "bench.db")
        scan_collection(db, collection, config.catalog)
        worker = Worker(db, engine, config)
        artworks = worker.enqueue_missing()
        wall, cpu = time.perf_counter(), time.process_time()
        summary = worker.run_until_idle()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        db.close()
    return wall, cpu, artworks, summary.clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="clip length in seconds")
    args = parser.parse_args()
    from engine.engines.default.engine import DefaultEngine

    engine = DefaultEngine()
    run(1, 5.0, engine)  # warm-up: imports, SoundFont, OpenCV's colour tables
    print(f"default engine, {args.duration:.0f}-s clips, demo collection, one core")
    print(f"{'candidates':>10} {'clips':>6} {'wall s':>8} {'CPU s':>8} {'CPU s/artwork':>14}  verdict")
    for k in (1, 2, 3):
        wall, cpu, artworks, clips = run(k, args.duration, engine)
        per = cpu / max(1, artworks)
        ok = per <= TARGET_PER_ARTWORK_S and cpu <= TARGET_COLLECTION_S
        print(
            f"{k:>10} {clips:>6} {wall:>8.1f} {cpu:>8.1f} {per:>14.2f}  {'fast enough' if ok else 'too slow'}"
        )
    print(
        f"(targets: <= {TARGET_PER_ARTWORK_S:.0f} s CPU per artwork, <= {TARGET_COLLECTION_S:.0f} s for the collection)"
    )


if __name__ == "__main__":
    main()
