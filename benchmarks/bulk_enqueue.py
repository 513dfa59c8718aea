"""Bulk enqueue (issue 10, item 3): how fast a million artworks are queued, and that workers
claim meanwhile.

    PYTHONPATH=. .venv/bin/python benchmarks/bulk_enqueue.py [--artworks 1000000] [--keep DIR]

Builds a store (the real schema, made by ``Database``) with ``--artworks`` ready artworks, a
tenth of them already with a clip and a hundredth with an open job (both must be skipped),
then times ``JobQueue.enqueue_missing`` and prints jobs/s. A second process claims jobs while
the queueing runs: the figures show how many it took before the queueing ended (no GPU idles)
and its slowest claim (how long the write lock was held at most). Finally the pass with
nothing left to queue (what the service's housekeeping runs every minute) is timed.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.store import Database
from engine.store.jobs import ENQUEUE_CHUNK, JobQueue

ENGINE, MODEL, PARAMS = "art2mus", "bench-model", "p" * 16


def build(path: Path, artworks: int) -> None:
    """The store with ``artworks`` ready artworks (rows written with the driver, in one go)."""
    Database(path).close()  # the real schema
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    now = "2026-11-29 12:00:00.000000"
    con.executemany(
        "INSERT INTO artworks (id, image_hash, path, source, title, artist, year, description, style,"
        " extra_json, status, reason, metadata_source, embedding_kind, created_at, updated_at)"
        " VALUES (?, ?, ?, 'collection', '', '', '', '', '', '{}', 'ready', '', '', '', ?, ?)",
        ((i, f"{i:064x}", f"works/{i:07d}.jpg", now, now) for i in range(1, artworks + 1)),
    )
    con.executemany(
        "INSERT INTO clips (image_hash, artwork_id, engine, model_version, params_hash, params_json,"
        " seed, duration, sample_rate, channels, audio_format, audio, caption, chosen, created_at)"
        " VALUES (?, ?, ?, ?, ?, '{}', 0, 10.0, 16000, 1, 'flac', x'', '', 1, ?)",
        ((f"{i:064x}", i, ENGINE, MODEL, PARAMS, now) for i in range(1, artworks + 1, 10)),
    )
    con.executemany(
        "INSERT INTO jobs (kind, artwork_id, image_hash, engine, params_json, priority, status, attempts,"
        " faults, max_attempts, error, claimed_by, created_at)"
        " VALUES ('pregenerate', ?, ?, ?, '{}', 0, 'queued', 0, 0, 3, '', '', ?)",
        ((i, f"{i:064x}", ENGINE, now) for i in range(5, artworks + 1, 100)),
    )
    con.commit()
    con.close()


def claimer(path: str, started, done, out) -> None:
    """Claim jobs (as a GPU worker would, each in its own transaction) until queueing ends."""
    queue = JobQueue(Database(path))
    started.wait()
    taken, slowest = 0, 0.0
    while not done.is_set():
        t0 = time.perf_counter()
        job = queue.claim("bench-worker", engines=[ENGINE])
        slowest = max(slowest, time.perf_counter() - t0)
        taken += job is not None  # left running: it is the worker's now
        time.sleep(0.01)  # a GPU batch takes far longer; this only samples the lock
    out.put((taken, slowest))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artworks", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=ENQUEUE_CHUNK, help="artworks per transaction")
    parser.add_argument("--keep", type=Path, help="folder for the database (default: a temp folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "bench.db"
        path.unlink(missing_ok=True)
        t0 = time.perf_counter()
        build(path, args.artworks)
        print(f"built {args.artworks:,} artworks in {time.perf_counter() - t0:.1f} s ({path})")

        ctx = mp.get_context("spawn")
        started, done, out = ctx.Event(), ctx.Event(), ctx.Queue()
        other = ctx.Process(target=claimer, args=(str(path), started, done, out))
        other.start()
        queue = JobQueue(Database(path))
        time.sleep(2.0)  # the claimer's imports and connection
        started.set()
        t0 = time.perf_counter()
        queued = queue.enqueue_missing(
            engine=ENGINE, model_version=MODEL, params_hash=PARAMS, candidates=1, chunk=args.chunk
        )
        seconds = time.perf_counter() - t0
        done.set()
        taken, slowest = out.get(timeout=60)
        other.join(timeout=30)
        expected = (
            args.artworks - len(range(1, args.artworks + 1, 10)) - len(range(5, args.artworks + 1, 100))
        )
        print(
            f"enqueue_missing ({args.chunk:,} artworks per transaction): {queued:,} jobs in {seconds:.2f} s = {queued / seconds:,.0f} jobs/s"
        )
        print(f"  (expected {expected:,}: artworks with a clip or an open job are skipped)")
        print(
            f"  meanwhile another process claimed {taken} jobs; its slowest claim took {slowest * 1000:.0f} ms"
        )
        t0 = time.perf_counter()
        again = queue.enqueue_missing(engine=ENGINE, model_version=MODEL, params_hash=PARAMS, candidates=1)
        print(f"second pass (nothing to queue): {again} jobs in {time.perf_counter() - t0:.2f} s")
        if queued != expected or again != 0:
            raise SystemExit("wrong count of jobs queued")


if __name__ == "__main__":
    main()
