"""What the default engine sees in a painting: a handful of documented colour and layout numbers.

Everything is computed on a copy downscaled to at most ``ANALYSIS_SIDE`` pixels on its longer
side (area averaging, so brushwork still shows as texture), in the CIE L*a*b* colour space,
where distances match perceived colour differences. All steps are deterministic: the same
pixels always give the same numbers.

The features, each documented where it is computed:

- ``palette``: the five dominant colours (k-means in L*a*b*), with the share of the picture
  each covers, largest first.
- ``brightness`` 0..1: mean lightness L*/100.
- ``warmth`` -1..1: chroma-weighted leaning of the hues towards red/orange/yellow (+) or
  towards blue/green (-).
- ``saturation`` 0..1: mean chroma (colourfulness), 1 for a picture of pure vivid colour.
- ``contrast`` 0..1: spread of lightness (RMS contrast of L*), 1 for half black, half white.
- ``edge_density`` 0..1: share of pixels on an edge (Canny with thresholds from the median).
- ``texture`` 0..1: mean local variation of lightness, high for visible, busy brushwork.
- ``busyness`` 0..1: edges and texture together: calm, smooth fields near 0, agitated
  brushwork or abstract clutter near 1.
- ``mass_x``, ``mass_y`` -1..1: where the visual weight sits (left/right, top/bottom), weight
  being how much a pixel stands out (lightness far from the mean, vivid colour, edges).
- ``hue`` 0..360 degrees: the L*a*b* hue angle of the most characteristic palette colour
  (coverage times chroma), and ``hue_chroma`` its chroma (how clearly it is a colour).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import cv2
import numpy as np

ANALYSIS_SIDE = 160
PALETTE_SIZE = 5
# Chroma (in L*a*b* units) of a fully vivid colour; used to scale saturation to 0..1.
VIVID_CHROMA = 80.0
# The hue (L*a*b* angle, degrees) at the heart of "warm": orange.
WARM_HUE = 55.0


@dataclass(frozen=True)
class PaletteColour:
    rgb: tuple[int, int, int]
    lab: tuple[float, float, float]
    share: float  # of the picture's pixels, 0..1

    @property
    def chroma(self) -> float:
        return float(np.hypot(self.lab[1], self.lab[2]))

    @property
    def hue(self) -> float:
        return float(np.degrees(np.arctan2(self.lab[2], self.lab[1])) % 360.0)


@dataclass(frozen=True)
class ImageFeatures:
    palette: tuple[PaletteColour, ...]
    brightness: float
    warmth: float
    saturation: float
    contrast: float
    edge_density: float
    texture: float
    busyness: float
    mass_x: float
    mass_y: float
    hue: float
    hue_chroma: float

    def fingerprint(self) -> int:
        """A stable 64-bit number from the features, to seed the composer's choices."""
        blob = repr(sorted(asdict(self).items())).encode()
        return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little")

    def summary(self) -> dict[str, float]:
        """The scalar features rounded for display (the benchmark and the clip details)."""
        return {k: round(v, 3) for k, v in asdict(self).items() if isinstance(v, float)}


def downscale(rgb: np.ndarray, side: int = ANALYSIS_SIDE) -> np.ndarray:
    """The image shrunk (never enlarged) so its longer side is at most ``side`` pixels."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image of shape (H, W, 3), got {rgb.dtype} {rgb.shape}")
    h, w = rgb.shape[:2]
    if h < 2 or w < 2:
        raise ValueError(f"image of {w}x{h} pixels is too small to analyse")
    scale = side / max(h, w)
    if scale >= 1.0:
        return np.ascontiguousarray(rgb)
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB uint8 -> L*a*b* float32 (L 0..100, a/b about -128..127)."""
    return cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)


def extract_features(rgb: np.ndarray) -> ImageFeatures:
    """Measure an RGB uint8 image (any size); see the module docstring for the meanings."""
    small = downscale(rgb)
    lab = to_lab(small)
    L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    chroma = np.hypot(a, b)

    palette = _palette(small, lab)
    brightness = float(L.mean() / 100.0)
    # RMS contrast of lightness; a half-black, half-white image has std 50.
    contrast = float(min(1.0, L.std() / 50.0))
    saturation = float(min(1.0, chroma.mean() / VIVID_CHROMA))
    warmth = _warmth(a, b, chroma)

    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    edges = _edges(gray)
    edge_density = float(edges.mean())
    texture = _texture(L)
    # Edge density rarely exceeds ~0.3 even for agitated brushwork; texture is already 0..1.
    busyness = float(np.clip(0.5 * min(1.0, edge_density / 0.3) + 0.5 * texture, 0.0, 1.0))

    mass_x, mass_y = _visual_mass(L, chroma, edges)
    hue, hue_chroma = _characteristic_hue(palette)
    return ImageFeatures(
        palette=palette,
        brightness=brightness,
        warmth=warmth,
        saturation=saturation,
        contrast=contrast,
        edge_density=edge_density,
        texture=texture,
        busyness=busyness,
        mass_x=mass_x,
        mass_y=mass_y,
        hue=hue,
        hue_chroma=hue_chroma,
    )


def _palette(small: np.ndarray, lab: np.ndarray) -> tuple[PaletteColour, ...]:
    """Dominant colours: k-means on the L*a*b* pixels, seeded so it is repeatable."""
    pixels = lab.reshape(-1, 3)
    k = min(PALETTE_SIZE, len(pixels))
    # OpenCV's k-means draws its k-means++ seeds from its own RNG: fix it for repeatability.
    cv2.setRNGSeed(20260)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    # OpenCV's stubs want an array for bestLabels; None (let kmeans make it) is what it accepts.
    _, labels, centers = cv2.kmeans(pixels, k, None, criteria, 1, cv2.KMEANS_PP_CENTERS)  # type: ignore[call-overload]
    counts = np.bincount(labels.ravel(), minlength=k)
    rgb_pixels = small.reshape(-1, 3).astype(np.float64)
    colours = []
    for i in np.argsort(-counts, kind="stable"):
        if counts[i] == 0:
            continue
        red, green, blue = (round(c) for c in rgb_pixels[labels.ravel() == i].mean(axis=0))
        lab_l, lab_a, lab_b = (round(float(c), 3) for c in centers[i])
        colours.append(
            PaletteColour(
                rgb=(red, green, blue),
                lab=(lab_l, lab_a, lab_b),
                share=round(float(counts[i] / len(pixels)), 4),
            )
        )
    return tuple(colours)


def _warmth(a: np.ndarray, b: np.ndarray, chroma: np.ndarray) -> float:
    """Chroma-weighted cosine of each hue's distance from orange: +1 all orange, -1 all blue."""
    total = float(chroma.sum())
    if total < 1e-6:
        return 0.0
    hue = np.arctan2(b, a)
    lean = np.cos(hue - np.radians(WARM_HUE))
    # Weighted by chroma so that greys do not count; scaled by how colourful the image is so a
    # faintly tinted grey is only faintly warm.
    direction = float((lean * chroma).sum() / total)
    strength = min(1.0, float(chroma.mean()) / 30.0)
    return float(np.clip(direction * strength, -1.0, 1.0))


def _edges(gray: np.ndarray) -> np.ndarray:
    """Canny edges (as 0/1) with thresholds around the median grey, so exposure does not matter."""
    median = float(np.median(gray))
    lo, hi = int(max(0, 0.66 * median)), int(min(255, 1.33 * median))
    hi = max(hi, lo + 10)
    return (cv2.Canny(gray, lo, hi) > 0).astype(np.float32)


def _texture(L: np.ndarray) -> float:
    """Mean local standard deviation of lightness in 5x5 windows, scaled to 0..1.

    Smooth colour fields give ~1-2 L* units; thick, visible brushstrokes ~10-15.
    """
    mean = cv2.blur(L, (5, 5))
    sq = cv2.blur(L * L, (5, 5))
    local_std = np.sqrt(np.maximum(sq - mean * mean, 0.0))
    return float(min(1.0, local_std.mean() / 15.0))


def _visual_mass(L: np.ndarray, chroma: np.ndarray, edges: np.ndarray) -> tuple[float, float]:
    """Centroid of visual weight relative to the centre: (-1 left .. 1 right, -1 top .. 1 bottom)."""
    weight = np.abs(L - L.mean()) / 50.0 + chroma / VIVID_CHROMA + 0.5 * cv2.blur(edges, (5, 5))
    total = float(weight.sum())
    h, w = L.shape
    if total < 1e-9:
        return 0.0, 0.0
    ys = (np.arange(h, dtype=np.float64) + 0.5) / h * 2 - 1
    xs = (np.arange(w, dtype=np.float64) + 0.5) / w * 2 - 1
    mx = float((weight.sum(axis=0) * xs).sum() / total)
    my = float((weight.sum(axis=1) * ys).sum() / total)
    # The centroid of real pictures rarely strays past +-0.3; stretch that to the full range.
    return float(np.clip(mx / 0.3, -1, 1)), float(np.clip(my / 0.3, -1, 1))


def _characteristic_hue(palette: tuple[PaletteColour, ...]) -> tuple[float, float]:
    """The hue of the palette colour with the most coverage x chroma (the colour one remembers)."""
    best = max(palette, key=lambda c: c.share * c.chroma)
    return round(best.hue, 3), round(best.chroma, 3)
