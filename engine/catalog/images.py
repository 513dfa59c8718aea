"""Reading curators' images safely: hashing, probing, decoding to RGB, thumbnails, descriptors.

Every image goes through :func:`open_checked` first, which reads only the header, so a
decompression bomb (a small file that claims 40,000 x 40,000 pixels) is refused before a
single pixel is decoded. Decoding is done at reduced size where the format allows it
(JPEG's DCT scaling through Pillow's ``draft``), which is what makes a first scan of a
thousand camera-sized JPEGs fast and small in memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import threading
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from engine.hashing import sha256_file

# Pillow warns from ~89 Mpx and refuses at twice that; we apply our own limit (the config's
# catalog.max_image_pixels) before decoding, so its warning is noise here.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

# Suffixes of the formats the catalog reads, and what Pillow calls them.
SUFFIX_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".png": "PNG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
SUPPORTED_FORMATS = frozenset(SUFFIX_FORMATS.values())
DEFAULT_MAX_PIXELS = 178_956_970
# Files up to this size are read once into memory (hash and decode from the same bytes).
_READ_WHOLE_LIMIT = 64 * 1024 * 1024


class ImageError(ValueError):
    """An image that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{os.fsdecode(path)}: {problem}")


def read_image_bytes(path: str | os.PathLike) -> tuple[bytes | None, str]:
    """(bytes, sha256) for a file small enough to keep in memory, else (None, sha256)."""
    size = os.stat(path).st_size
    if size > _READ_WHOLE_LIMIT:
        return None, sha256_file(path)
    with open(path, "rb") as fh:
        data = fh.read()
    return data, hashlib.sha256(data).hexdigest()


def open_checked(
    source: str | os.PathLike | bytes,
    *,
    name: str | os.PathLike | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Open an image lazily (header only) and refuse what must not be decoded.

    ``source`` is a path or the file's bytes; ``name`` is the file named in errors.
    """
    name = name if name is not None else ("<bytes>" if isinstance(source, bytes) else source)
    if isinstance(source, bytes):
        if not source:
            raise ImageError(name, "the file is empty (0 bytes)")
        fp: io.BytesIO | str | os.PathLike = io.BytesIO(source)
    else:
        if os.stat(source).st_size == 0:
            raise ImageError(name, "the file is empty (0 bytes)")
        fp = source
    try:
        im = Image.open(fp, formats=sorted(SUPPORTED_FORMATS))
    except Image.DecompressionBombError as exc:
        raise ImageError(name, _bomb_problem(str(exc), max_pixels)) from None
    except UnidentifiedImageError:
        raise ImageError(name, _not_an_image(source)) from None
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as exc:  # OSError, SyntaxError, struct.error, ... from a damaged header
        raise ImageError(name, f"the image header cannot be read ({exc})") from None
    width, height = im.size
    if width <= 0 or height <= 0:
        raise ImageError(name, f"the image claims an empty size ({width} x {height})")
    if width * height > max_pixels:
        im.close()
        raise ImageError(name, _bomb_problem(f"{width} x {height} = {width * height:,}", max_pixels))
    return im


def _bomb_problem(claimed: str, max_pixels: int) -> str:
    # Pillow refuses by itself above twice its own limit; its message holds the pixel count.
    found = re.search(r"\((\d+) pixels\)", claimed)
    if found:
        claimed = f"{int(found.group(1)):,}"
    return (
        f"refused as a possible decompression bomb: the image claims {claimed} pixels, "
        f"more than catalog.max_image_pixels ({max_pixels:,})"
    )


def _not_an_image(source: str | os.PathLike | bytes) -> str:
    head = source[:64] if isinstance(source, bytes) else _head(source)
    if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
        return "not an image: the file contains text"
    return "not an image in a supported format (JPEG, PNG, WebP or TIFF)"


def _head(path: str | os.PathLike) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(64)
    except OSError:
        return b""


def decode_rgb(im: Image.Image, *, name: str | os.PathLike, max_side: int | None = None) -> np.ndarray:
    """Decode an image from :func:`open_checked` to an (H, W, 3) uint8 RGB array.

    EXIF orientation is applied; CMYK, palette, greyscale, 16-bit and alpha images become RGB
    (alpha composited on white); embedded ICC profiles are converted to sRGB.
    ``max_side`` lets the decoder work at reduced size (JPEG DCT scaling), and the result is
    resized so that its longer side is at most ``max_side``.
    """
    try:
        if max_side is not None and im.format == "JPEG":
            # draft() picks the largest DCT scale (1/2, 1/4, 1/8) that stays >= the request;
            # orientation may swap the sides, so ask for a square.
            im.draft("RGB", (max_side, max_side))
        orientation = _orientation(im)
        icc = im.info.get("icc_profile")
        big = im.size[0] * im.size[1] > LARGE_IMAGE_PIXELS
        with _large_image_lock if big else contextlib.nullcontext():
            im.load()
            if max_side is not None and max(im.size) >= 2 * max_side:
                im = _reduce(im, max(im.size) // max_side)  # before any full-size copy
        if orientation in _TRANSPOSE:
            im = im.transpose(_TRANSPOSE[orientation])
        rgb = _to_rgb(im)
        if icc:
            rgb = _to_srgb(rgb, icc)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(name, _bomb_problem(str(exc), DEFAULT_MAX_PIXELS)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(name, _decode_problem(exc)) from None
    except MemoryError:
        raise ImageError(name, "not enough memory to decode the image") from None
    except Exception as exc:  # damaged files can upset decoders in unforeseen ways
        raise ImageError(name, f"the image data cannot be decoded ({type(exc).__name__}: {exc})") from None
    arr = np.asarray(rgb, dtype=np.uint8)
    if max_side is not None and max(arr.shape[:2]) > max_side:
        arr = _shrink(arr, max_side)
    return arr


# Decoding a very large (non-JPEG) image needs its full size in memory: one at a time.
LARGE_IMAGE_PIXELS = 40_000_000
_large_image_lock = threading.Lock()

# EXIF orientation -> the transposition that shows the image upright (as ImageOps does).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _reduce(im: Image.Image, factor: int) -> Image.Image:
    """Box-average by an integer factor (cheap); modes Pillow cannot reduce are kept."""
    if im.mode in ("P", "1") or factor < 2:
        return im
    try:
        return im.reduce(factor)
    except (ValueError, NotImplementedError):
        return im


def _orientation(im: Image.Image) -> int | None:
    try:
        return im.getexif().get(0x0112)
    except Exception:  # a damaged EXIF block: show the pixels as stored
        return None


def _shrink(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """Scale down so the longer side is max_side.

    Integer-factor area averaging first (OpenCV's fast path; no aliasing), then bilinear for
    the last step, which is less than 2x and so does not alias either. Several times faster
    than one non-integer area or Lanczos resize, and the scan spends its time here.
    """
    import cv2

    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    factor = int(1 / scale)
    if factor >= 2:
        rgb = cv2.resize(rgb, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if (rgb.shape[1], rgb.shape[0]) != size:
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
    return rgb


def _decode_problem(exc: BaseException) -> str:
    text = str(exc)
    if "truncated" in text or isinstance(exc, EOFError) or "broken data stream" in text:
        return f"the file is truncated or incomplete ({text})"
    return f"the image data cannot be decoded ({text})"


def _to_rgb(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode == "RGB":
        return im
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # Pillow's convert("L") clips 16-bit and float data; rescale to the image's range.
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = (0.0, 65535.0) if mode.startswith("I;16") else (float(arr.min()), float(arr.max()))
        scaled = np.clip((arr - lo) / max(hi - lo, 1e-12) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(scaled).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    # CMYK, YCbCr, LAB, P, L, 1, ...
    return im.convert("RGB")


_SRGB = ImageCms.createProfile("sRGB")
_transforms: dict[tuple[bytes, str], ImageCms.ImageCmsTransform | None] = {}
_transforms_lock = threading.Lock()


def _to_srgb(rgb: Image.Image, icc: bytes) -> Image.Image:
    """Convert from an embedded RGB profile (Adobe RGB, Display P3, ...) to sRGB."""
    key = (hashlib.sha1(icc).digest(), rgb.mode)
    with _transforms_lock:
        if key not in _transforms:
            try:
                src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                desc = (ImageCms.getProfileDescription(src) or "").lower()
                _transforms[key] = (
                    None
                    if "srgb" in desc or src.profile.xcolor_space.strip() != "RGB"
                    else ImageCms.buildTransform(src, _SRGB, "RGB", "RGB")
                )
            except (ImageCms.PyCMSError, OSError, ValueError, AttributeError):
                _transforms[key] = None  # an unusable profile: keep the pixels as they are
        transform = _transforms[key]
    if transform is None:
        return rgb
    try:
        converted = ImageCms.applyTransform(rgb, transform)  # None only when done in place
    except ImageCms.PyCMSError:
        return rgb
    return rgb if converted is None else converted


def load_rgb(
    path: str | os.PathLike,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int | None = None,
) -> np.ndarray:
    """Load ``path`` as an (H, W, 3) uint8 RGB array; raises :class:`ImageError` if it cannot.

    Bombs (more than ``max_pixels``), truncated files, empty files and non-images are refused
    with a message naming the file. With ``max_side`` the image is decoded at reduced size
    where possible and its longer side is at most ``max_side``.
    """
    try:
        with open_checked(path, max_pixels=max_pixels) as im:
            return decode_rgb(im, name=path, max_side=max_side)
    except FileNotFoundError:
        raise ImageError(path, "the file does not exist") from None
    except PermissionError:
        raise ImageError(path, "the file cannot be read (permission denied)") from None
    except IsADirectoryError:
        raise ImageError(path, "is a folder, not an image file") from None
    except OSError as exc:
        raise ImageError(path, f"the file cannot be read ({exc.strerror or exc})") from None


def make_thumbnail(rgb: np.ndarray, size: int) -> bytes:
    """JPEG bytes of ``rgb`` scaled so its longer side is at most ``size`` pixels."""
    rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    if max(rgb.shape[:2]) > size:
        rgb = _shrink(rgb, size)
    out = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(out, "JPEG", quality=85)
    return out.getvalue()


# --- descriptor -------------------------------------------------------------------------

DESCRIPTOR_KIND = "descriptor-v1"
_GRID = 4
_HUE_BINS = 12
_LIGHT_BINS = 8
_EDGE_BINS = 8
DESCRIPTOR_DIM = _GRID * _GRID * 3 + _HUE_BINS * 2 + _LIGHT_BINS + _EDGE_BINS


def image_descriptor(rgb: np.ndarray) -> np.ndarray:
    """A small float32 vector (unit length) of an image's colour and layout.

    Cosine similarity of two descriptors is high for images of similar palette, light and
    composition; the kiosk uses it to play the nearest ready clip while an artwork's own clip
    is being made. Blocks (each centred, so that cosine is not dominated by the all-positive
    part, and weighted): a 4x4 grid of mean CIELAB colours (layout), a hue histogram at two
    saturation levels, a lightness histogram, and a histogram of edge orientations (texture).
    """
    import cv2

    rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    small = cv2.resize(rgb, (64, 64), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)  # L 0..100, a/b ±
    grid = lab.reshape(_GRID, 64 // _GRID, _GRID, 64 // _GRID, 3).mean(axis=(1, 3))
    grid = (grid - np.array([50.0, 0.0, 0.0], np.float32)) / np.array([50.0, 60.0, 60.0], np.float32)

    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV_FULL).reshape(-1, 3).astype(np.float32)
    hue_bin = (hsv[:, 0] * _HUE_BINS / 256.0).astype(int)
    sat = hsv[:, 1] / 255.0
    vivid = sat >= 0.5
    hues = np.zeros((2, _HUE_BINS), np.float32)
    np.add.at(hues[0], hue_bin[~vivid], sat[~vivid])
    np.add.at(hues[1], hue_bin[vivid], sat[vivid])
    hues /= hsv.shape[0]

    light = np.histogram(lab[..., 0], bins=_LIGHT_BINS, range=(0.0, 100.0))[0].astype(np.float32)
    light /= light.sum() or 1.0

    grey = lab[..., 0]
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = np.hypot(gx, gy)
    angle = (np.arctan2(gy, gx) % np.pi) / np.pi  # edge orientation, 0..1
    edges = np.histogram(angle, bins=_EDGE_BINS, range=(0.0, 1.0), weights=magnitude)[0]
    edges = edges.astype(np.float32) / (magnitude.sum() + 1e-6)

    blocks = [
        (grid.ravel(), 1.0),
        (hues.ravel() - 1.0 / (2 * _HUE_BINS), 0.6),
        (light - 1.0 / _LIGHT_BINS, 0.5),
        (edges - 1.0 / _EDGE_BINS, 0.4),
    ]
    parts = []
    for vec, weight in blocks:
        norm = float(np.linalg.norm(vec))
        parts.append(vec / norm * weight if norm > 1e-9 else vec)
    desc = np.concatenate(parts).astype(np.float32)
    norm = float(np.linalg.norm(desc))
    return desc / norm if norm > 1e-9 else desc


def descriptor_from_bytes(data: bytes | None) -> np.ndarray | None:
    """The descriptor stored in ``Artwork.embedding`` (float32 bytes), or None."""
    if not data:
        return None
    return np.frombuffer(data, dtype=np.float32)


def suffix_format(path: str | os.PathLike) -> str | None:
    """The image format a file name promises by its suffix (case-insensitive), or None."""
    return SUFFIX_FORMATS.get(Path(os.fsdecode(path)).suffix.lower())
