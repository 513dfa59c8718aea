"""Finding and straightening a painting in camera frames made from the demo paintings
(tests/capture_scenes.py): framed, on a wall, at an angle, unevenly lit, noisy, JPEG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from capture_scenes import FRAME_SIZE, Variant, compare_size, grey_128, make_scene, read_bgr, ssim

from engine.capture.burst import assess, best_shot
from engine.capture.detect import detect_painting, order_corners
from engine.capture.quality import Refusal, blur_measure

DEMO = Path(__file__).resolve().parent.parent / "content" / "demo"
PAINTINGS = sorted(DEMO.glob("*.png"))
# Two photographs of each painting: 16 scenes, angles up to 30 degrees.
SCENES = [(p, seed * 100 + i) for seed in (0, 1) for i, p in enumerate(PAINTINGS)]


@pytest.mark.parametrize(("painting", "seed"), SCENES, ids=[f"{p.stem}-{s}" for p, s in SCENES])
def test_canvas_corners_and_straightened_crop(painting, seed):
    scene = make_scene(painting, seed)
    found = detect_painting(scene.image)
    assert found is not None
    assert found.framed, "the canvas inside the frame, not the frame's outer edge"
    error = np.linalg.norm(found.corners - scene.corners, axis=1).max()
    assert error <= 0.02 * scene.diagonal, (found.corners, scene.corners)
    source = read_bgr(painting)
    size = compare_size(source)
    assert ssim(grey_128(found.crop, size), grey_128(source, size)) >= 0.7


def test_outer_edge_of_the_frame_is_not_taken_for_the_canvas():
    scene = make_scene(PAINTINGS[3], 11)
    found = detect_painting(scene.image)
    assert found is not None
    # The frame adds 7-11 % of the painting's size on each side: far more than 2 %.
    area = lambda c: 0.5 * abs(np.dot(c[:, 0], np.roll(c[:, 1], 1)) - np.dot(c[:, 1], np.roll(c[:, 0], 1)))  # noqa: E731
    assert area(found.corners) == pytest.approx(area(scene.corners), rel=0.04)


@pytest.mark.parametrize(
    ("variant", "refusal", "words"),
    [
        (Variant.BLURRED, Refusal.BLURRED, "hold still"),
        (Variant.GLARE, Refusal.GLARE, "too much glare: step to the side"),
        (Variant.DARK, Refusal.DARK, "too dark"),
    ],
)
@pytest.mark.parametrize("painting", PAINTINGS[::3], ids=lambda p: p.stem)
def test_bad_shots_are_refused_with_the_reason(painting, variant, refusal, words):
    plain = assess(make_scene(painting, 5).image)
    assert plain.ok, plain.reason
    shot = assess(make_scene(painting, 5, variant).image)
    assert shot.refusal is refusal
    assert words in shot.reason


def test_black_frame_and_bare_wall():
    black = np.zeros((FRAME_SIZE[1], FRAME_SIZE[0], 3), np.uint8)
    assert assess(black).refusal is Refusal.BLACK_FRAME
    wall = np.full_like(black, 190) + np.random.default_rng(0).integers(0, 6, black.shape, dtype=np.uint8)
    shot = assess(wall)
    assert shot.refusal is Refusal.NO_PAINTING
    assert "no painting found" in shot.reason


def test_best_of_a_burst_is_the_sharp_good_frame():
    painting = PAINTINGS[1]
    burst = [make_scene(painting, 3, Variant.BLURRED).image, make_scene(painting, 3).image]
    burst.append(make_scene(painting, 3, Variant.GLARE).image)
    shot = best_shot(burst)
    assert shot.ok
    assert shot.frame is burst[1]
    refused = best_shot([burst[0], burst[2]])
    assert not refused.ok and refused.refusal in (Refusal.BLURRED, Refusal.GLARE)


def test_manual_capture_takes_the_whole_frame():
    scene = make_scene(PAINTINGS[0], 2)
    shot = assess(scene.image, whole=True)
    assert shot.ok and shot.detection is not None and shot.detection.whole_frame
    assert shot.detection.crop.shape == scene.image.shape
    assert shot.detection.corners.max() == pytest.approx(FRAME_SIZE[0] - 1)


def test_blur_measure_does_not_depend_on_how_busy_the_painting_is():
    busy = read_bgr(PAINTINGS[7])[..., 1]
    calm = np.tile(np.linspace(60, 200, busy.shape[1], dtype=np.float32), (busy.shape[0], 1))
    calm = (calm + np.random.default_rng(1).normal(0, 4, calm.shape)).clip(0, 255).astype(np.uint8)
    assert blur_measure(busy) < 0.36 and blur_measure(calm) < 0.36
    assert blur_measure(np.full((50, 50), 128, np.uint8)) == 1.0


def test_order_corners_starts_top_left_clockwise():
    shuffled = np.array([[10, 90], [90, 10], [10, 10], [90, 90]], np.float32)
    assert order_corners(shuffled).tolist() == [[10, 10], [90, 10], [90, 90], [10, 90]]


@pytest.mark.parametrize("painting", PAINTINGS[::2], ids=lambda p: p.stem)
def test_a_painting_without_a_frame_is_taken_whole(painting):
    scene = make_scene(painting, 21, framed=False)
    found = detect_painting(scene.image)
    assert found is not None and not found.framed
    assert np.linalg.norm(found.corners - scene.corners, axis=1).max() <= 0.02 * scene.diagonal
