"""10,000 artworks: peak memory, and frame times scrolling the gallery end to end.

Targets: peak memory < 500 MB; 99th percentile frame time < 20 ms. Offscreen Qt at
1920x1080. Each "frame" moves the gallery by --step pixels (a brisk fling: 120 px per frame
is 7,200 px/s at 60 fps), repaints the viewport synchronously and lets queued events run
(thumbnails arriving from the decoder threads), timing all of it on the UI thread.
Thumbnails decode on two pool threads meanwhile; the script also prints how many painted
cards already showed their thumbnail.

    PYTHONPATH=. python benchmarks/kiosk_scroll.py [--artworks 10000] [--step 120]
    PYTHONPATH=. python benchmarks/kiosk_scroll.py --step 20 --distance 40000   # browsing pace

Frames run back to back (not paced at 60 fps), so the decoder threads get less time per
frame here than on a real screen: the thumbnail coverage printed is a lower bound.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artworks", type=int, default=10000)
    parser.add_argument("--step", type=int, default=120)
    parser.add_argument("--distance", type=int, default=0, help="scroll only this far (px); 0 = end to end")
    args = parser.parse_args()
    os.environ.setdefault(
        "QT_QPA_PLATFORM",
        "offscreen:configfile="
        + str(Path(__file__).resolve().parent.parent / "tests" / "offscreen-1920x1080.json"),
    )
    from kiosk_synthetic import make_store, open_kiosk

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        db = make_store(Path(tmp) / "bench.db", args.artworks)
        print(f"synthetic store: {args.artworks} artworks in {time.perf_counter() - t0:.1f} s")
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        app, window, backend = open_kiosk(db)
        window.idle.stop()  # programmatic scrolling is no visitor input: keep attract mode away
        app.processEvents()
        print(f"window with {window.model.rowCount()} cards ready in {time.perf_counter() - t0:.2f} s")
        view = window.gallery.view
        bar = view.verticalScrollBar()
        view.doItemsLayout()
        app.processEvents()
        print(
            f"gallery height {bar.maximum() + view.viewport().height():,} px; scrolling by {args.step} px per frame"
        )

        painted = shown = 0
        original_get = window.thumbnails.get

        def counting_get(artwork_id):
            nonlocal painted, shown
            image = original_get(artwork_id)
            painted += 1
            shown += image is not None
            return image

        window.thumbnails.get = counting_get
        times, cpu = [], []
        load_before = os.getloadavg()[0]
        value = 0
        assert window.page == "gallery"
        end = bar.maximum() if not args.distance else min(bar.maximum(), args.distance)
        while value <= end:
            start, start_cpu = time.perf_counter(), time.thread_time()
            bar.setValue(value)
            view.viewport().repaint()
            app.processEvents()
            times.append(time.perf_counter() - start)
            cpu.append(time.thread_time() - start_cpu)
            value += args.step
        # and back up, over cards decoded earlier (some evicted by the cache bound)
        while value >= 0:
            start, start_cpu = time.perf_counter(), time.thread_time()
            bar.setValue(value)
            view.viewport().repaint()
            app.processEvents()
            times.append(time.perf_counter() - start)
            cpu.append(time.thread_time() - start_cpu)
            value -= args.step * 4
        assert window.page == "gallery"
        window.thumbnails.wait_idle(10000)
        ms = np.array(times) * 1000
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"frames: {len(ms)}; frame time median {np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms, "
            f"p99 {np.percentile(ms, 99):.1f} ms (target < 20 ms), max {ms.max():.1f} ms"
        )
        cpu_ms = np.array(cpu) * 1000
        print(
            f"UI-thread CPU time per frame (excludes waiting for other processes on a shared machine): "
            f"median {np.median(cpu_ms):.1f} ms, p99 {np.percentile(cpu_ms, 99):.1f} ms"
        )
        print(
            f"machine load average during the run: {load_before:.1f} -> {os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} CPUs (other processes share them; wall-clock tails include that)"
        )
        print(
            f"cards painted with their thumbnail already decoded: {100 * shown / max(painted, 1):.0f} % "
            f"(of {painted:,} card paints)"
        )
        print(
            f"thumbnail cache: {window.thumbnails.cached_bytes / 2**20:.0f} MB in {len(window.thumbnails._images)} images "
            f"(bound {window.thumbnails.max_bytes / 2**20:.0f} MB)"
        )
        print(
            f"peak memory (max RSS) {peak:.0f} MB (target < 500 MB); before the kiosk opened {rss_before:.0f} MB"
        )
        window.allow_close = True
        window.close()
        backend.close()


if __name__ == "__main__":
    main()
