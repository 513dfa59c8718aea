"""Catalog benchmarks: the three figures of issue 2.

1. Re-scan of an unchanged 10,000-image collection (target: under 5 s).
2. First scan of 1,000 JPEGs of 1,600 x 1,200: images/s (target: at least 40) and peak memory
   of the scanning process (target: under 300 MB).
3. Watch: time from the end of a copy until the image is in the catalog (target: under 2 s).

    PYTHONPATH=. .venv/bin/python benchmarks/catalog_scan.py [--cache DIR] [--workers N]

The synthetic collections (varied pictures, real JPEG encoding) are made once and kept in
``--cache`` (default: ~/.cache/art2mus-bench). The 10,000-image collection uses small JPEGs:
a re-scan of unchanged files never opens them, so their pixel size does not matter; it has
a catalog.csv row for every image and a sidecar for every tenth, as a museum's would. Each
measurement runs in a fresh process, so its peak memory (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# --- synthetic collections -----------------------------------------------------------------


def painting(seed: int, width: int, height: int) -> np.ndarray:
    """A varied picture like a photographed painting: colour fields, shapes, brush texture."""
    rng = np.random.default_rng(seed)
    w, h = max(width // 4, 8), max(height // 4, 6)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = rng.uniform(0, 255, 3) + x[..., None] * rng.uniform(-2, 2, 3) * 400 / w
    img = img + y[..., None] * rng.uniform(-2, 2, 3) * 300 / h
    for _ in range(rng.integers(3, 12)):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(3, w / 3), rng.uniform(3, h / 3)
        img[((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 < 1] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 10, img.shape)  # brush texture, softened by the upscale below
    small = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    big = np.asarray(small.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)
    big = big + rng.normal(0, 3, big.shape)  # canvas grain and sensor noise
    return np.clip(big, 0, 255).astype(np.uint8)


def make_jpegs(folder: Path, count: int, size: tuple[int, int], per_folder: int | None = None) -> None:
    marker = folder / ".complete"
    if marker.exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    t = time.monotonic()
    for i in range(count):
        sub = folder / f"room-{i // per_folder:02d}" if per_folder else folder
        sub.mkdir(exist_ok=True)
        Image.fromarray(painting(i, *size)).save(sub / f"work-{i:05d}.jpg", quality=90)
        if i % 200 == 0:
            print(f"  making {folder.name}: {i}/{count} ({time.monotonic() - t:.0f} s)", flush=True)
    marker.touch()


def make_big_collection(folder: Path) -> None:
    """10,000 small JPEGs in 10 rooms, a catalog.csv naming them all, sidecars for 1 in 10."""
    make_jpegs(folder, 10_000, (160, 120), per_folder=1000)
    csv_path = folder / "catalog.csv"
    if not csv_path.exists():
        rows = ["file,title,artist,year,style,inventory"]
        for i in range(10_000):
            rel = f"room-{i // 1000:02d}/work-{i:05d}.jpg"
            rows.append(f'{rel},"Work {i}",Artist {i % 97},{1800 + i % 200},Style {i % 7},INV-{i}')
            if i % 10 == 0:
                sidecar = folder / f"room-{i // 1000:02d}" / f"work-{i:05d}.json"
                sidecar.write_text(json.dumps({"title": f"Sidecar title {i}", "room": i // 1000}))
        csv_path.write_text("\n".join(rows) + "\n")


# --- measurements (each in its own process) ------------------------------------------------


def _scan(folder: str, db_path: str, workers: int | None) -> dict:
    from engine.catalog.scanner import scan_collection
    from engine.config import CatalogConfig
    from engine.store import Database

    db = Database(db_path)
    t = time.perf_counter()
    summary = scan_collection(db, folder, CatalogConfig(), workers=workers)
    seconds = time.perf_counter() - t
    db.close()
    return {
        "seconds": seconds,
        "added": summary.added,
        "unchanged": summary.unchanged,
        "invalid": summary.invalid,
        "problems": len(summary.problems),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _watch(folder: str, db_path: str, source: str, repeats: int) -> dict:
    from sqlalchemy import select

    from engine.catalog.watcher import CatalogWatcher
    from engine.config import CatalogConfig
    from engine.store import Artwork, Database

    db = Database(db_path)
    config = CatalogConfig()
    landed = threading.Event()
    watcher = CatalogWatcher(db, folder, config, on_change=lambda s: s.added and landed.set())
    watcher.start()
    time.sleep(2.0)  # let the first full scan finish (the collection is already catalogued)
    data = Path(source).read_bytes()
    latencies = []
    for i in range(repeats):
        name = f"new-{os.getpid()}-{i}.jpg"
        landed.clear()
        with open(Path(folder) / name, "wb") as fh:  # a copy in 8 pieces, 50 ms apart
            step = len(data) // 8 + 1
            for k in range(0, len(data), step):
                fh.write(data[k : k + step])
                fh.flush()
                time.sleep(0.05)
        done = time.monotonic()
        while True:
            with db.read() as s:
                if s.scalar(select(Artwork.id).where(Artwork.path == name, Artwork.status == "ready")):
                    break
            if time.monotonic() - done > 30:
                raise RuntimeError(f"{name} did not reach the catalog in 30 s")
            time.sleep(0.01)
        latencies.append(time.monotonic() - done)
        os.unlink(Path(folder) / name)
        time.sleep(0.5)
    watcher.stop()
    db.close()
    return {"latencies": latencies, "settle_seconds": config.settle_seconds}


def _child(args: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(args)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if out.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("~/.cache/art2mus-bench").expanduser())
    parser.add_argument("--workers", type=int, default=None, help="reader threads (default: cores)")
    parser.add_argument("--repeats", type=int, default=5, help="watch measurements")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = json.loads(args.child)
        result = _scan(*rest) if kind == "scan" else _watch(*rest)
        print(json.dumps(result))
        return

    cache = args.cache
    big, photos = cache / "collection-10000", cache / "collection-1000"
    print(f"Synthetic collections in {cache} (made once, then reused)")
    make_big_collection(big)
    make_jpegs(photos, 1000, (1600, 1200))
    cores = len(os.sched_getaffinity(0))
    load = os.getloadavg()[0]
    print(f"Machine: {cores} cores, load average {load:.1f} (shared machine: figures are noisy)")

    with tempfile.TemporaryDirectory(prefix="art2mus-bench-") as tmp:
        # 1. Re-scan of an unchanged 10,000-image collection.
        big_db = str(cache / "collection-10000.db")
        first = _child(["scan", str(big), big_db, args.workers])
        if first["added"]:
            print(f"  (catalogued the 10,000-image collection first: {first['seconds']:.1f} s)")
        rescans = [_child(["scan", str(big), big_db, args.workers]) for _ in range(3)]
        assert all(r["unchanged"] == 10_000 for r in rescans), rescans
        best = min(r["seconds"] for r in rescans)
        runs = ", ".join(f"{r['seconds']:.2f}" for r in rescans)
        print(f"1. Re-scan of unchanged 10,000-image collection: {best:.2f} s (runs: {runs}; target < 5 s)")

        # 2. First scan of 1,000 JPEGs of 1,600 x 1,200.
        db = str(Path(tmp) / "first.db")
        r = _child(["scan", str(photos), db, args.workers])
        assert r["added"] == 1000 and r["invalid"] == 0, r
        rate = 1000 / r["seconds"]
        print(
            f"2. First scan of 1,000 JPEGs 1600x1200: {rate:.1f} images/s ({r['seconds']:.1f} s; "
            f"target >= 40), peak memory {r['peak_rss_mb']:.0f} MB RSS (target < 300 MB)"
        )

        # 3. Watch latency.
        source = Path(tmp) / "source.jpg"
        Image.fromarray(painting(123456, 1600, 1200)).save(source, quality=90)
        w = _child(["watch", str(photos), db, str(source), args.repeats])
        lat = w["latencies"]
        print(
            f"3. Watch: new image in the catalog {statistics.median(lat):.2f} s (median; max "
            f"{max(lat):.2f} s of {len(lat)}) after its copy completes, with settle_seconds = "
            f"{w['settle_seconds']} (target < 2 s)"
        )


if __name__ == "__main__":
    main()
