"""The interface every music engine implements.

The worker, the kiosk and the CLI only see this: an engine has a name and a model version
(together with the parameters they key the clip cache), and turns an RGB image into a clip.
Engines hold their heavy state (models, SoundFonts) and are created once per process.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from engine.loops import Loop

MIN_DURATION = 5.0
MAX_DURATION = 120.0
MAX_SEED = 2**31 - 1


class GenerationError(RuntimeError):
    """An engine could not make a clip; the message says for what and why."""


@dataclass
class GeneratedClip:
    """Audio an engine made for one image: float32, shape (frames, channels)."""

    audio: np.ndarray
    sample_rate: int
    seed: int
    duration: float
    # Plain words for the kiosk's "now playing" line.
    caption: str = ""
    # Candidate ranking from the engine's scorer (higher is better); None without a scorer.
    score: float | None = None
    # Whatever the engine chose (key, tempo, instruments, ...), stored with the clip as JSON.
    details: dict[str, Any] = field(default_factory=dict)
    # The clip's loop in frames; None: the whole clip loops seamlessly (both engines' clips).
    loop: Loop | None = None

    def loop_or_whole(self) -> Loop:
        return self.loop if self.loop is not None else Loop.whole(np.asarray(self.audio).shape[0])


@runtime_checkable
class Engine(Protocol):
    #: Short stable name, e.g. "default" or "art2mus".
    name: str
    #: Identifies the model/code that makes the audio; changing it invalidates cached clips.
    model_version: str

    def params(self) -> dict[str, Any]:
        """Generation settings that change the output (except seed and duration)."""
        ...

    def generate(self, image: np.ndarray, duration: float, seed: int) -> GeneratedClip:
        """Make one clip from an RGB uint8 image of shape (H, W, 3)."""
        ...

    def generate_batch(
        self, images: Sequence[np.ndarray], duration: float, seeds: Sequence[int]
    ) -> list[GeneratedClip]:
        """Make one clip per image; engines that batch on a GPU override this."""
        ...


def params_hash(params: dict[str, Any]) -> str:
    """A stable hash of generation parameters, for the clip cache key."""
    blob = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def check_request(duration: float, seed: int) -> None:
    """Refuse a duration or seed outside the allowed range, naming the range."""
    if not (MIN_DURATION <= duration <= MAX_DURATION):
        raise ValueError(
            f"duration {duration:g} s is out of range; allowed: {MIN_DURATION:g} to {MAX_DURATION:g} seconds"
        )
    if not (0 <= seed <= MAX_SEED):
        raise ValueError(f"seed {seed} is out of range; allowed: 0 to {MAX_SEED}")
