"""The stages of a cluster run, as Ray Data calls them (plain functions and one actor class).

manifest row → :func:`decode` (CPU task: the image read from shared storage, checked against
its hash, decoded) → :class:`EngineActor` (one per GPU: the engine, loaded once, generates a
batch) → :func:`finish` (CPU task: FLAC encoding, the content-addressed file written atomically
into the clip folder) → a metadata row the head node imports into the store.

A row that fails (an image changed or unreadable, an engine error) carries its ``error`` on
through the later stages instead of stopping the run; the head node reports it. Nothing here
imports Ray: the stages are tested and reused without it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.store.clip_files import ClipFiles
from engine.store.clips import encode_flac

if TYPE_CHECKING:
    from engine.config import Config

log = logging.getLogger(__name__)

# A placeholder image for rows that failed before the engine: keeps the column's type.
_NO_IMAGE = np.zeros((1, 1, 3), np.uint8)
_NO_AUDIO = np.zeros((1, 1), np.float32)


def decode(row: dict[str, Any], max_pixels: int) -> dict[str, Any]:
    """Read, check and decode the row's image (the worker's own loader and size limits)."""
    from engine.catalog.images import ImageError, load_rgb
    from engine.hashing import sha256_file
    from engine.worker import LOAD_MAX_SIDE

    path = Path(row["path"])
    out = {**row, "image": _NO_IMAGE, "error": ""}
    try:
        if sha256_file(path) != row["image_hash"]:
            out["error"] = f"{path}: the file changed since the manifest was made (rescan, run again)"
            return out
        out["image"] = load_rgb(path, max_pixels=max_pixels, max_side=LOAD_MAX_SIDE)
    except (OSError, ImageError) as exc:
        out["error"] = f"{path}: {exc}"
    return out


class EngineActor:
    """One engine, loaded once per actor (a GPU's worth of work), generating a batch per call."""

    def __init__(self, config: Config, engine_name: str, model_version: str, duration: float, device: str):
        from engine.engines.registry import create_engine

        config.diffusion.device = device
        self.engine = create_engine(engine_name, config)
        if self.engine.model_version != model_version:
            # A node with another model (or code) than the head node: its clips would be
            # stored under a key that is not theirs.
            raise RuntimeError(
                f"this node's {engine_name} engine is model version {self.engine.model_version}, "
                f"the head node's {model_version}: install the same model and art2mus everywhere"
            )
        self.duration = duration

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from engine.engines.base import GenerationError

        n = len(batch["seed"])
        errors = [str(e) for e in batch["error"]]
        todo = [i for i in range(n) if not errors[i]]
        audio: list[np.ndarray] = [_NO_AUDIO] * n
        rates, captions = np.zeros(n, np.int64), [""] * n
        scores, loudness = np.full(n, np.nan), np.full(n, np.nan)
        loop_start, loop_end = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
        if todo:
            try:
                clips = self.engine.generate_batch(
                    [batch["image"][i] for i in todo], self.duration, [int(batch["seed"][i]) for i in todo]
                )
            except (GenerationError, ValueError, RuntimeError) as exc:
                for i in todo:
                    errors[i] = f"{batch['path'][i]}: {exc}"
                clips = []
            for i, clip in zip(todo, clips, strict=False):
                samples = np.asarray(clip.audio, np.float32)
                audio[i] = samples if samples.ndim == 2 else samples[:, None]
                rates[i], captions[i] = clip.sample_rate, clip.caption
                scores[i] = np.nan if clip.score is None else clip.score
                loudness[i] = float(clip.details.get("loudness_lufs", np.nan)) if clip.details else np.nan
                loop = clip.loop_or_whole()
                loop_start[i], loop_end[i] = loop.start, loop.end
        return {
            "artwork_id": batch["artwork_id"],
            "image_hash": batch["image_hash"],
            "path": batch["path"],
            "seed": batch["seed"],
            "audio": _ragged(audio),
            "sample_rate": rates,
            "caption": np.array(captions, dtype=object),
            "score": scores,
            "loudness_lufs": loudness,
            "loop_start": loop_start,
            "loop_end": loop_end,
            "error": np.array(errors, dtype=object),
        }


def _ragged(arrays: list[np.ndarray]) -> np.ndarray:
    """A column of arrays of different lengths (Ray Data stores it as a variable-shaped tensor)."""
    column = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        column[i] = a
    return column


def finish(row: dict[str, Any], clip_folder: str) -> dict[str, Any]:
    """Encode the clip as FLAC and store it, content-addressed and atomically, in the folder;
    the row keeps only metadata (the audio does not travel back to the head node)."""
    audio = np.asarray(row.pop("audio"), np.float32)
    out = {**row, "audio_sha256": "", "audio_size": 0, "channels": int(audio.shape[1]), "frames": len(audio)}
    if row["error"]:
        return out
    try:
        flac = encode_flac(audio, int(row["sample_rate"]))
        out["audio_sha256"] = ClipFiles(Path(clip_folder)).write(flac)
        out["audio_size"] = len(flac)
    except OSError as exc:
        out["error"] = f"{clip_folder}: cannot store the clip: {exc.strerror or exc}"
    return out
