"""A small real training dataset, built once per test process: demo paintings (and crops of
them), audio synthesised from each image's colours (so image and audio are related), one broken
audio file and one broken image; then precomputed with the tiny bundle."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import numpy as np

# The machine the tests run on is shared; one thread per process avoids oversubscription
# (two threads made a tiny training step 20× slower there).
try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass

ROOT = Path(__file__).resolve().parent.parent
SECONDS = 1.28  # 128 mel frames → (8, 32, 16) latents: the real code path at a tenth of the cost

_CACHE: dict[str, Path] = {}


def synth_audio(rgb: np.ndarray, seconds: float, rate: int = 16000) -> np.ndarray:
    """A chord whose pitches follow the image's mean colour, with a pulse from its brightness."""
    mean = rgb.reshape(-1, 3).mean(axis=0) / 255.0
    t = np.arange(int(seconds * rate)) / rate
    wave = np.zeros_like(t)
    for i, c in enumerate(mean):
        f = 110.0 * 2 ** (3 * c + i * 0.5)
        wave += np.sin(2 * np.pi * f * t) / 3
    wave *= 0.6 + 0.4 * np.sin(2 * np.pi * (1 + 4 * mean.mean()) * t)
    return (0.4 * wave).astype(np.float32)


def make_pairs_folder(folder: Path, copies: int = 2) -> Path:
    import soundfile as sf
    from PIL import Image

    from training.data import write_pairs

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "images").mkdir(exist_ok=True)
    (folder / "audio").mkdir(exist_ok=True)
    paintings = sorted((ROOT / "content" / "demo").glob("*.png"))
    rows = []
    n = 0
    for copy in range(copies):
        for p in paintings:
            im = Image.open(p).convert("RGB")
            w, h = im.size
            if copy:  # a different crop: a different image with a related colour
                im = im.crop((w // 4, h // 4, w, h)).transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            im.thumbnail((256, 256))
            name = f"{n:03d}"
            im.save(folder / "images" / f"{name}.png")
            sf.write(folder / "audio" / f"{name}.wav", synth_audio(np.asarray(im), 2.0, 22050), 22050)
            rows.append(
                {
                    "id": name,
                    "image": f"images/{name}.png",
                    "audio": f"audio/{name}.wav",
                    "style": "impressionism" if n % 3 else "realism",
                }
            )
            n += 1
    (folder / "audio" / "broken.wav").write_bytes(b"RIFF\x00\x00not really a wave file")
    rows.append(
        {"id": "broken-audio", "image": "images/000.png", "audio": "audio/broken.wav", "style": "realism"}
    )
    (folder / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    rows.append(
        {"id": "broken-image", "image": "images/broken.png", "audio": "audio/001.wav", "style": "realism"}
    )
    write_pairs(folder / "pairs.csv", rows)
    return folder / "pairs.csv"


def _root() -> Path:
    if "root" not in _CACHE:
        _CACHE["root"] = Path(tempfile.mkdtemp(prefix="art2mus-test-training-"))
        atexit.register(shutil.rmtree, _CACHE["root"], True)
    return _CACHE["root"]


def pairs_csv() -> Path:
    if "pairs" not in _CACHE:
        _CACHE["pairs"] = make_pairs_folder(_root() / "pairs")
    return _CACHE["pairs"]


def prepared_data(kind: str = "imagebind") -> Path:
    """The dataset precomputed with the tiny bundle (read-only: copy it to change it)."""
    from diffusion_helpers import tiny_bundle

    from training.prepare import prepare

    key = f"data-{kind}"
    if key not in _CACHE:
        out = _root() / key
        prepare(
            pairs_csv(),
            tiny_bundle(kind),
            out,
            shard_size=8,
            batch=8,
            seconds=SECONDS,
            val_count=4,
            progress=False,
        )
        _CACHE[key] = out
    return _CACHE[key]
