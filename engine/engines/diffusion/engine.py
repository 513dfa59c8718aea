"""The Art2Mus engine: the :class:`engine.engines.base.Engine` the worker and the CLI call.

It loads a model bundle once (refusing a bad one with the file named), generates batches of
artworks with :class:`Art2MusPipeline`, and finishes each clip for the kiosk: 16 kHz mono →
48 kHz stereo, the tail crossfaded into the head so it loops without a seam, and mastered
with the default engine's own code to -18 LUFS with true peak at most -1 dBTP.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from engine import audio_utils
from engine.engines.base import GeneratedClip, GenerationError, check_request
from engine.engines.default import mastering
from engine.engines.diffusion.samplers import Sampler

if TYPE_CHECKING:
    from engine.config import Config

log = logging.getLogger(__name__)

OUTPUT_RATE = 48000
GENERATION_MARGIN_S = 0.1
# Bumped when the finishing (resampling, loop, loudness) changes, which changes the clips.
POSTPROCESS_VERSION = 1


class ScorerKind(StrEnum):
    """``diffusion.scorer``: how an artwork's candidates are ranked."""

    NONE = "none"
    IMAGEBIND = "imagebind"


class Scorer(Protocol):
    """Rates how well each clip fits its artwork (higher is better).

    The worker makes ``engine.candidates`` clips per artwork (different seeds, one
    ``generate_batch`` call, so one UNet batch) and chooses the best-scored one. The paper's
    code ranks by ImageBind image–audio similarity (``diffusion.scorer = "imagebind"``,
    ``imagebind_audio.ImageBindScorer``); a bundle holds no audio encoder, so by default there
    is no scorer, clips carry no score and the worker keeps the first.
    """

    name: str

    def __call__(self, images: Sequence[np.ndarray], audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """One score per (image, waveform) pair; ``audio`` is (B, samples) mono."""
        ...


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch.device(device)
    except RuntimeError:
        raise GenerationError(
            f"diffusion.device {device!r} is not a device; use 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from None
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise GenerationError(f"device {device!r} was asked for, but this machine has no usable CUDA GPU")
    return device


class Art2MusEngine:
    """Artwork → music with a loaded Art2Mus model bundle."""

    name = "art2mus"

    def __init__(
        self,
        model: str | Path,
        *,
        steps: int = 200,
        guidance_scale: float = 3.5,
        batch_size: int = 4,
        device: str = "auto",
        precision: str = "auto",
        loop_crossfade: float = 1.5,
        compile: bool = False,
        sampler: str = "ddim",
        cuda_graphs: bool = False,
        duration: float = 10.0,
        scorer: Scorer | None = None,
    ):
        import torch

        from .bundle import load_bundle
        from .pipeline import Art2MusPipeline, resolve_dtype

        self.device = pick_device(device)
        dtype = resolve_dtype(precision, torch.device(self.device))
        started = time.monotonic()
        self.bundle = load_bundle(model, device=self.device, dtype=dtype)
        on_gpu = self.device.startswith("cuda")
        compiled = compile and on_gpu
        graphed = cuda_graphs and on_gpu and not compiled
        if (compile or cuda_graphs) and not on_gpu:
            log.info(
                "diffusion.compile / cuda_graphs need a CUDA GPU; the %s runs the UNet eagerly", self.device
            )
        elif compile and cuda_graphs:
            log.info(
                "diffusion.compile is on, so diffusion.cuda_graphs is not used (compile or graphs, not both)"
            )
        # The K/V cache is for the eager UNet only (kv_cache.py).
        self.pipeline = Art2MusPipeline(
            self.bundle, self.device, sampler=sampler, kv_cache=not (compiled or graphed)
        )
        # 0: sized from free GPU memory for the configured clip length (4 on a CPU), before a
        # graph capture or compilation would claim memory of its own.
        self.batch_size = batch_size or self.pipeline.auto_batch_size(
            duration + loop_crossfade + GENERATION_MARGIN_S
        )
        if on_gpu:
            # Convolutions in bf16/fp16 run fastest on NHWC tensors with cuDNN.
            self.bundle.unet.to(memory_format=torch.channels_last)
            if compiled:
                self.pipeline.unet = torch.compile(self.bundle.unet)
            elif graphed:
                from .cuda_graphs import GraphedUNet

                self.pipeline.unet = GraphedUNet(self.bundle.unet)
        self.model_version = self.bundle.version
        self.steps, self.guidance_scale = steps, guidance_scale
        self.loop_crossfade = loop_crossfade
        self.precision = str(dtype).removeprefix("torch.")
        self.scorer = scorer
        log.info(
            "art2mus engine: bundle %s (model version %s, %s encoder) on %s in %s, loaded in %.1f s",
            self.bundle.path,
            self.model_version[:12],
            self.bundle.encoder_kind,
            self.device,
            self.precision,
            time.monotonic() - started,
        )

    # ------------------------------------------------------------------ Engine protocol

    def params(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "scorer": self.scorer.name if self.scorer is not None else None,
            "sample_rate": OUTPUT_RATE,
            "loudness_lufs": mastering.TARGET_LUFS,
            "loop_crossfade": self.loop_crossfade,
            "postprocess": POSTPROCESS_VERSION,
            # Only a non-default sampler joins the clip's key, so DDIM clips made before the
            # option existed are still found.
            **({"sampler": self.pipeline.sampler.value} if self.pipeline.sampler is not Sampler.DDIM else {}),
        }

    def generate(self, image: np.ndarray, duration: float, seed: int) -> GeneratedClip:
        return self.generate_batch([image], duration, [seed])[0]

    def generate_batch(
        self,
        images: Sequence[np.ndarray],
        duration: float,
        seeds: Sequence[int],
        on_step: Callable[[int, int], None] | None = None,
    ) -> list[GeneratedClip]:
        if len(images) != len(seeds):
            raise ValueError(f"{len(images)} images but {len(seeds)} seeds")
        for seed in seeds:
            check_request(duration, seed)
        for i, image in enumerate(images):
            if not (
                isinstance(image, np.ndarray)
                and image.ndim == 3
                and image.shape[2] == 3
                and image.dtype == np.uint8
            ):
                raise ValueError(
                    f"image {i}: expected an RGB uint8 array (H, W, 3), got "
                    f"{getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}"
                )
        if not images:
            return []
        started = time.monotonic()
        # Generate the loop's crossfade on top, so the looped clip has the asked-for length,
        # plus a margin: AudioLDM 2 floors durations to whole mel frames.
        waves = self.pipeline.generate(
            images,
            seeds,
            steps=self.steps,
            guidance_scale=self.guidance_scale,
            duration=duration + self.loop_crossfade + GENERATION_MARGIN_S,
            batch_size=self.batch_size,
            on_step=on_step,
        )
        sr = self.pipeline.sample_rate
        scores = (
            np.asarray(self.scorer(images, waves, sr), dtype=np.float64)
            if self.scorer is not None
            else [None] * len(images)
        )
        elapsed = (time.monotonic() - started) / len(images)
        return [
            self._finish(wave, sr, duration, int(seed), None if score is None else float(score), elapsed)
            for wave, seed, score in zip(waves, seeds, scores, strict=True)
        ]

    # ------------------------------------------------------------------ finishing

    def _finish(
        self, wave: np.ndarray, sr: int, duration: float, seed: int, score: float | None, seconds: float
    ) -> GeneratedClip:
        audio = audio_utils.resample(wave, sr, OUTPUT_RATE)
        frames = int(round(duration * OUTPUT_RATE))
        fade = int(round(self.loop_crossfade * OUTPUT_RATE))
        if audio.shape[0] < frames + fade:
            raise GenerationError(
                f"the model made {audio.shape[0] / OUTPUT_RATE:.2f} s of audio; "
                f"{(frames + fade) / OUTPUT_RATE:.2f} s were needed"
            )
        # Cut first, then fold the tail into the head: the cut must not fall inside the seam.
        audio = audio_utils.crossfade_loop(audio[: frames + fade], OUTPUT_RATE, fade / OUTPUT_RATE)
        # Measured on the stereo clip the kiosk plays (two equal channels read 3 dB louder);
        # the limiter runs circularly, like the clip.
        audio, loudness, peak = mastering.master(audio_utils.to_stereo(audio), OUTPUT_RATE)
        details = {
            "model": self.bundle.path.name,
            "encoder": self.bundle.encoder_kind,
            "steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "device": self.device,
            "precision": self.precision,
            "generation_seconds": round(seconds, 3),
            "loudness_lufs": round(loudness, 2) if np.isfinite(loudness) else None,
            "true_peak_dbtp": round(float(peak), 2),
            "scorer": self.scorer.name
            if self.scorer is not None
            else "none (diffusion.scorer = 'none': the first candidate is kept)",
        }
        return GeneratedClip(
            audio=audio,
            sample_rate=OUTPUT_RATE,
            seed=seed,
            duration=duration,
            caption=f"Art2Mus diffusion ({self.bundle.encoder_kind}, {self.steps} steps)",
            score=score,
            details=details,
        )


def create_art2mus_engine(config: Config) -> Art2MusEngine:
    """The registry's factory: the bundle at ``engine.model`` with the configured settings."""
    from engine.engines.registry import clip_duration

    from .bundle import BundleError

    e, d = config.engine, config.diffusion
    if e.model is None:
        raise BundleError(
            "no model bundle configured: set engine.model to a bundle folder "
            "(make one with `art2mus models build` or `art2mus models make-tiny`)"
        )
    engine = Art2MusEngine(
        e.model,
        steps=e.steps,
        guidance_scale=e.guidance_scale,
        batch_size=e.batch_size,
        device=d.device,
        precision=d.precision,
        loop_crossfade=d.loop_crossfade_seconds,
        compile=d.compile,
        sampler=d.sampler,
        cuda_graphs=d.cuda_graphs,
        # the batch is sized for the clips this engine makes: diffusion.duration, not engine.duration
        duration=clip_duration(config, "art2mus"),
    )
    if ScorerKind(d.scorer) is ScorerKind.IMAGEBIND:
        engine.scorer = _imagebind_scorer(config, engine)
    elif e.candidates > 1:
        log.warning(
            "engine.candidates = %d but diffusion.scorer = 'none': the first clip is chosen; "
            "set diffusion.scorer = 'imagebind' to keep the one closest to the artwork, as the "
            "paper's code does; curators can choose another",
            e.candidates,
        )
    return engine


def _imagebind_scorer(config: Config, engine: Art2MusEngine) -> Scorer:
    """ImageBind's image–audio similarity from ``diffusion.imagebind_checkpoint``."""
    from .checkpoints import CheckpointError
    from .imagebind_audio import load_imagebind_scorer

    checkpoint = config.diffusion.imagebind_checkpoint
    if checkpoint is None:
        raise CheckpointError(
            "diffusion.scorer = 'imagebind' needs diffusion.imagebind_checkpoint: the path of "
            "imagebind_huge.pth (or set diffusion.scorer = 'none')"
        )
    try:
        return load_imagebind_scorer(checkpoint, engine.bundle.encoder, device=engine.device)
    except CheckpointError as exc:
        raise CheckpointError(f"diffusion.imagebind_checkpoint: {exc}") from exc
