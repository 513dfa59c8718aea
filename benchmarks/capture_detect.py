"""Painting detection + straightening on one core at 1280x720. Target: >= 15 frames/s.

Camera frames are made from the demo paintings (tests/capture_scenes.py: framed, on a wall,
up to 30 degrees off-axis, uneven light, noise, JPEG). The process is pinned to one CPU and
OpenCV to one thread. Printed: frames/s of detection + straightening (what the live preview
and a capture need), the same with the quality checks, and how exact the result is over the
scenes: the worst corner error in % of the canvas diagonal (the tests require <= 2 %) and
the SSIM of the straightened crop against the painting at 128 px grey (tests: >= 0.7).

    PYTHONPATH=. python benchmarks/capture_detect.py [--scenes 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenes", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=6.0, help="time spent on each speed figure")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import cv2
    from capture_scenes import compare_size, grey_128, make_scene, read_bgr, ssim

    from engine.capture.burst import assess
    from engine.capture.detect import detect_painting

    cv2.setNumThreads(1)
    paintings = sorted((ROOT / "content" / "demo").glob("*.png"))
    scenes = [make_scene(paintings[i % len(paintings)], 5000 + i) for i in range(args.scenes)]
    errors, similarities, framed = [], [], 0
    for scene in scenes:
        found = detect_painting(scene.image)
        if found is None:
            errors.append(float("inf"))
            continue
        framed += found.framed
        errors.append(float(np.linalg.norm(found.corners - scene.corners, axis=1).max() / scene.diagonal))
        source = read_bgr(scene.painting)
        size = compare_size(source)
        similarities.append(ssim(grey_128(found.crop, size), grey_128(source, size)))
    err, sim = np.array(errors) * 100, np.array(similarities)
    print(
        f"{len(scenes)} scenes at {scenes[0].image.shape[1]}x{scenes[0].image.shape[0]}, {framed} framed canvases found"
    )
    print(
        f"corner error, % of the canvas diagonal: median {np.median(err):.2f}, max {err.max():.2f} "
        f"(within 2 %: {(err <= 2).sum()}/{len(err)})"
    )
    print(
        f"SSIM of the straightened crop at 128 px grey: median {np.median(sim):.3f}, min {sim.min():.3f} "
        f"(>= 0.7: {(sim >= 0.7).sum()}/{len(sim)})"
    )
    # CPU time of this (pinned, single-threaded) process is what a frame costs one core; the
    # wall-clock rate is printed too, and is lower when other programs share the core.
    for label, work in (("detection + straightening", detect_painting), ("with the quality checks", assess)):
        done, wall, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - wall < args.seconds:
            work(scenes[done % len(scenes)].image)
            done += 1
        cpu_rate = done / (time.process_time() - cpu)
        wall_rate = done / (time.perf_counter() - wall)
        print(
            f"{label}: {cpu_rate:.1f} frames/s of one core's CPU time ({1000 / cpu_rate:.1f} ms a frame; "
            f"target >= 15); wall clock {wall_rate:.1f} frames/s (load average {os.getloadavg()[0]:.1f})"
        )


if __name__ == "__main__":
    main()
