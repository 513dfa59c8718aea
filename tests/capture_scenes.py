"""Camera photographs of the demo paintings, made here: the test scenes of camera capture.

Each painting is put in a picture frame (a moulding with bevel lines), hung on a textured
wall, seen at an angle through a pinhole camera, lit unevenly, given sensor noise and JPEG
compression. Variants add motion blur, a glare spot on the varnish, or too little light. The
true canvas corners in frame pixels come with each scene, so the tests and benchmarks can
measure the detector against them. Images are BGR (what a camera gives OpenCV).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np

FRAME_SIZE = (1280, 720)


class Variant(StrEnum):
    PLAIN = "plain"
    BLURRED = "blurred"
    GLARE = "glare"
    DARK = "dark"


@dataclass(frozen=True)
class Scene:
    image: np.ndarray  # (H, W, 3) uint8 BGR camera frame
    corners: np.ndarray  # (4, 2) float32: the canvas's TL, TR, BR, BL in frame pixels
    painting: Path
    variant: Variant

    @property
    def diagonal(self) -> float:
        """The canvas's diagonal in frame pixels (the scale of the 2 % corner tolerance)."""
        c = self.corners
        return float(max(np.linalg.norm(c[2] - c[0]), np.linalg.norm(c[3] - c[1])))


def read_bgr(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FileNotFoundError(path)
    return image


def _framed(
    painting: np.ndarray, rng: np.random.Generator, framed: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """The painting in a moulding (or bare): (image, canvas corners in its pixels)."""
    h, w = painting.shape[:2]
    border = int(round(max(h, w) * rng.uniform(0.07, 0.11)))
    if not framed:
        canvas = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5], [-0.5, h - 0.5]])
        return np.clip(painting, 0, 255).astype(np.uint8), canvas.astype(np.float32)
    colour = np.array(
        [rng.uniform(15, 45), rng.uniform(30, 70), rng.uniform(50, 100)]  # dark wood, BGR
        if rng.random() < 0.6
        else [rng.uniform(20, 50), rng.uniform(110, 150), rng.uniform(160, 200)],  # gilt
        np.float32,
    )
    out = np.empty((h + 2 * border, w + 2 * border, 3), np.float32)
    out[:] = colour
    # Bevel lines parallel to the edges (a real moulding's profile), lighter and darker.
    for frac, gain in ((0.25, 1.35), (0.55, 0.7), (0.8, 1.2)):
        d = int(border * frac)
        cv2.rectangle(out, (d, d), (out.shape[1] - 1 - d, out.shape[0] - 1 - d), (colour * gain).tolist(), 2)
    out += rng.normal(0, 3.0, out.shape[:2])[..., None]  # wood grain / gilding texture
    out[border : border + h, border : border + w] = painting
    # Pixel centres are at integer coordinates (OpenCV), so the canvas edge lies half a pixel out.
    b0, w1, h1 = border - 0.5, border + w - 0.5, border + h - 0.5
    canvas = np.array([[b0, b0], [w1, b0], [w1, h1], [b0, h1]])
    return np.clip(out, 0, 255).astype(np.uint8), canvas.astype(np.float32)


def _wall(rng: np.random.Generator) -> np.ndarray:
    w, h = FRAME_SIZE
    base = np.array([rng.uniform(170, 215), rng.uniform(180, 220), rng.uniform(185, 225)], np.float32)
    blotches = cv2.resize(rng.normal(0, 6, (9, 16)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return base + blotches[..., None]


def _projection(
    size: tuple[int, int], yaw: float, pitch: float, roll: float, fill: float, shift: tuple[float, float]
) -> np.ndarray:
    """Homography taking the framed image (pixels) to the camera frame: a plane turned by
    yaw/pitch/roll (degrees) in front of a pinhole camera, filling ``fill`` of the frame height."""
    fw, fh = FRAME_SIZE
    w, h = size
    focal = 1.1 * fw
    half = np.array([[-w, -h], [w, -h], [w, h], [-w, h]], np.float64) / 2
    y, p, r = (math.radians(a) for a in (yaw, pitch, roll))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    points = np.c_[half, np.zeros(4)] @ (rz @ rx @ ry).T
    distance = focal * h / (fill * fh)
    z = points[:, 2] + distance
    projected = focal * points[:, :2] / z[:, None] + np.array(
        [fw / 2 + shift[0] * fw, fh / 2 + shift[1] * fh]
    )
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    return cv2.getPerspectiveTransform(src, projected.astype(np.float32))


def _light(rng: np.random.Generator) -> np.ndarray:
    """A smooth light field, 0.6-1.05: a lamp off to one side and some fall-off."""
    w, h = FRAME_SIZE
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(-0.3, 1.3) * w, rng.uniform(-0.5, 0.5) * h
    dist = np.hypot(xx - cx, yy - cy) / math.hypot(w, h)
    return (1.05 - 0.45 * np.clip(dist, 0, 1))[..., None]


def _motion_blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    length = int(rng.integers(17, 27))
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0
    angle = float(rng.uniform(0, 180))
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
    kernel = cv2.warpAffine(kernel, rot, (length, length))
    return cv2.filter2D(image, -1, kernel / kernel.sum())


def _glare(image: np.ndarray, corners: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A specular reflection on the varnish: a bright, clipped blob well inside the canvas."""
    centre = corners.mean(axis=0) + (corners[1] - corners[0]) * rng.uniform(-0.15, 0.15)
    diagonal = float(np.linalg.norm(corners[2] - corners[0]))
    sigma = diagonal * rng.uniform(0.07, 0.1)
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    blob = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sigma**2))
    return image + 420.0 * blob[..., None]


def make_scene(
    painting: Path,
    seed: int,
    variant: Variant = Variant.PLAIN,
    *,
    max_angle: float = 30.0,
    framed: bool = True,
) -> Scene:
    """One camera frame of ``painting`` (seeded: the same arguments give the same frame)."""
    rng = np.random.default_rng(seed)
    framed_image, canvas = _framed(read_bgr(painting).astype(np.float32), rng, framed)
    h_mat = _projection(
        (framed_image.shape[1], framed_image.shape[0]),
        yaw=rng.uniform(-max_angle, max_angle),
        pitch=rng.uniform(-max_angle / 2, max_angle / 2),
        roll=rng.uniform(-6, 6),
        fill=rng.uniform(0.6, 0.8),
        shift=(rng.uniform(-0.08, 0.08), rng.uniform(-0.04, 0.04)),
    )
    size = FRAME_SIZE
    warped = cv2.warpPerspective(framed_image, h_mat, size, flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(
        np.ones(framed_image.shape[:2], np.float32), h_mat, size, flags=cv2.INTER_LINEAR
    )
    # A soft shadow below and to the side of the frame, as a picture light throws it.
    shadow = cv2.GaussianBlur(np.roll(mask, (6, 4), axis=(0, 1)), (0, 0), 6)
    scene = _wall(rng) * (1 - 0.25 * shadow[..., None])
    scene = scene * (1 - mask[..., None]) + warped.astype(np.float32) * mask[..., None]
    corners = cv2.perspectiveTransform(canvas[None], h_mat)[0]
    scene *= _light(rng)
    if variant is Variant.GLARE:
        scene = _glare(scene, corners, rng)
    if variant is Variant.DARK:
        scene *= 0.1
    scene = np.clip(scene, 0, 255)
    if variant is Variant.BLURRED:
        scene = _motion_blur(scene, rng)
    scene += rng.normal(0, 3.0 if variant is not Variant.DARK else 1.5, scene.shape)  # sensor noise
    frame = np.clip(scene, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    frame = cv2.imdecode(jpeg, cv2.IMREAD_COLOR)
    return Scene(frame, corners.astype(np.float32), painting, variant)


def synthetic_painting(path: Path, seed: int = 12) -> Path:
    """A painting of no catalog: dabs and strokes of colour over a ground, seeded."""
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(420, 520)), int(rng.integers(340, 560))
    canvas = np.empty((h, w, 3), np.uint8)
    canvas[:] = [int(c) for c in rng.integers(40, 200, 3)]
    for _ in range(150):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(5, 50)), int(rng.integers(5, 30)))
        cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    for _ in range(1500):  # brush strokes: the texture every painted surface has
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        dx, dy = (int(v) for v in rng.integers(-12, 13, 2))
        shade = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.line(canvas, (x, y), (x + dx, y + dy), shade, 1, cv2.LINE_AA)
    cv2.imwrite(str(path), canvas)
    return path


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """The frames as an MJPEG AVI file: a camera whose stream ends when the file does."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot write MJPEG video here")
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity of two grey images of one size (Wang et al. 2004, 7x7
    Gaussian window σ = 1.5, K1 = 0.01, K2 = 0.03, dynamic range 255)."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (7, 7), 1.5)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float((num / den)[3:-3, 3:-3].mean())


def grey_128(bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A grey image resized to ``size`` (width, height): how crops and sources are compared."""
    return cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), size, interpolation=cv2.INTER_AREA)


def compare_size(painting: np.ndarray) -> tuple[int, int]:
    """128 px on the painting's longer side, its aspect kept."""
    h, w = painting.shape[:2]
    scale = 128 / max(h, w)
    return max(1, round(w * scale)), max(1, round(h * scale))
