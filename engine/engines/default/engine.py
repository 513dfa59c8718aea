"""The default engine: composes ambient music from a painting on the CPU.

``DefaultEngine.generate(image, duration, seed)`` reads the image's features (features.py),
composes a loop from them (composer.py), renders it with a General-MIDI SoundFont
(renderer.py) and writes the caption (caption.py). It needs no GPU and no model files, so
the installation always plays.

``model_version`` is a hash of this package's source code, the SoundFont's bytes and the
FluidSynth version: changing any of them changes the music, so cached clips of the old
version are no longer found and get regenerated.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.engines.base import GeneratedClip, GenerationError, check_request

from .caption import make_caption
from .composer import compose
from .features import extract_features
from .heap import keep_freed_buffers
from .mastering import CEILING_DBTP, TARGET_LUFS
from .renderer import SAMPLE_RATE, Renderer

if TYPE_CHECKING:
    from engine.config import Config

PACKAGE_DIR = Path(__file__).resolve().parent


def _code_hash() -> str:
    h = hashlib.sha256()
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


class DefaultEngine:
    """Image features -> composition -> SoundFont rendering, 48 kHz stereo, -18 LUFS."""

    name = "default"

    def __init__(self, soundfont: str | os.PathLike | None = None):
        keep_freed_buffers()  # a process that makes clips reuses their buffers (heap.py)
        self.renderer = Renderer(soundfont, SAMPLE_RATE)
        version = hashlib.sha256(f"{_code_hash()} {self.renderer.version()}".encode()).hexdigest()[:16]
        self.model_version = f"default-{version}"

    def params(self) -> dict[str, Any]:
        return {
            "sample_rate": SAMPLE_RATE,
            "loudness_lufs": TARGET_LUFS,
            "true_peak_dbtp": CEILING_DBTP,
            "soundfont": self.renderer.soundfont.name,
        }

    def generate(self, image: np.ndarray, duration: float, seed: int) -> GeneratedClip:
        check_request(duration, seed)
        image = np.asarray(image)
        try:
            features = extract_features(image)
        except ValueError as exc:
            raise GenerationError(f"cannot read the image's features: {exc}") from exc
        composition = compose(features, float(duration), int(seed))
        audio, figures = self.renderer.render(composition)
        details = {
            **composition.describe(),
            **figures,
            "features": features.summary(),
            "palette": [list(c.rgb) for c in features.palette],
            "note_count": composition.note_count(),
        }
        return GeneratedClip(
            audio=audio,
            sample_rate=SAMPLE_RATE,
            seed=int(seed),
            duration=float(duration),
            caption=make_caption(features, composition),
            score=None,
            details=details,
        )

    def generate_batch(
        self, images: Sequence[np.ndarray], duration: float, seeds: Sequence[int]
    ) -> list[GeneratedClip]:
        if len(images) != len(seeds):
            raise ValueError(f"{len(images)} images but {len(seeds)} seeds")
        return [self.generate(image, duration, seed) for image, seed in zip(images, seeds, strict=True)]


def create_default_engine(config: Config | None = None) -> DefaultEngine:
    """Registry factory: the default engine with the configured SoundFont (if any)."""
    soundfont = getattr(getattr(config, "engine", None), "soundfont", None) if config else None
    return DefaultEngine(soundfont)
