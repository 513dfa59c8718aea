"""Real image and metadata files for the catalog tests (small, made on the fly)."""

from __future__ import annotations

import hashlib
import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def picture(seed: int, width: int = 160, height: int = 120) -> np.ndarray:
    """A varied RGB picture: gradients, a few shapes, a little noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(0, 255, 3)
    slope = rng.uniform(-1.5, 1.5, (2, 3))
    img = base + x[..., None] * slope[0] * 160 / width + y[..., None] * slope[1] * 120 / height
    for _ in range(4):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(5, width / 3)
        img[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_jpeg(path: Path, seed: int = 0, size: tuple[int, int] = (160, 120), **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture(seed, *size)).save(path, "JPEG", quality=90, **kw)
    return path


def write_png(path: Path, seed: int = 0, size: tuple[int, int] = (160, 120)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture(seed, *size)).save(path, "PNG")
    return path


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def write_png_bomb(path: Path, width: int = 40_000, height: int = 40_000) -> Path:
    """A valid PNG header claiming width x height pixels; a few hundred bytes on disk."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\0" + b"\0" * (3 * min(width, 1000))
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(row * 4, 9))
        + _chunk(b"IEND", b"")
    )
    path.write_bytes(data)
    return path


def write_truncated_jpeg(path: Path, seed: int = 0) -> Path:
    write_jpeg(path, seed, (320, 240))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def snapshot(folder: Path) -> dict[str, tuple[str, int, int]]:
    """Every file under folder: (sha256, size, mtime_ns), to prove nothing was changed."""
    out = {}
    for dirpath, dirs, files in os.walk(folder):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            digest = ""
            if os.path.isfile(p) and not os.path.islink(p):
                digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            out[os.path.relpath(p, folder)] = (digest, st.st_size, st.st_mtime_ns)
    return out


def age(folder: Path, seconds: float = 3600) -> None:
    """Date every regular file under folder back, as if copied in long ago."""
    then = time.time_ns() - int(seconds * 1e9)
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            p = os.path.join(dirpath, name)
            if os.path.isfile(p) and not os.path.islink(p):
                os.utime(p, ns=(then, then))
