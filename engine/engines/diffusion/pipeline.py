"""Art2Mus generation: artwork pixels → 16 kHz music, the way AudioLDM2Pipeline makes it.

    image ─ vision encoder ─ Image Aligner ─ GPT-2 (8 LoA embeddings) ─┐
                                   stored FLAN-T5 prompt conditioning ─┴─ UNet × DDIM steps
    latents ─ VAE decoder ─ mel spectrogram ─ HiFi-GAN ─ waveform (16 kHz, mono)

The denoising loop follows ``diffusers.AudioLDM2Pipeline.__call__`` step for step (latent
shape from the duration, ``init_noise_sigma``, classifier-free guidance with the negative
branch first, DDIM with eta 0, ``1 / scaling_factor`` before the VAE, the waveform cut to
the requested length), so with the same components, conditioning, seed and steps it gives the
pipeline's latents and audio (tests/test_diffusion_parity.py). What it adds:

- a ``torch.Generator`` per artwork, seeded with that artwork's seed, so an artwork's clip
  does not depend on which other artworks share its batch;
- many artworks in one UNet call, and on a CUDA out-of-memory error the batch is halved
  and retried (the smaller size is remembered) instead of failing the job;
- the UNet in bf16/fp16 on a GPU (latents and the scheduler stay in fp32), fp32 on a CPU;
- the cross-attention keys and values of the constant conditioning computed once per
  generation instead of once per step (``kv_cache.py``; the latents stay bit-identical);
- no host-device synchronisation inside the denoising loop: the timesteps are made on the host
  and copied to the device once, and the scheduler steps on Python ints (DDIM's
  ``alphas_cumprod[t]`` with a CUDA ``t`` was one sync per step);
- an optional faster sampler (``samplers.py``: DPM-Solver++, UniPC) instead of DDIM.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..base import GenerationError
from .bundle import ModelBundle
from .conditioning import LOA_TOKENS, generate_loa
from .kv_cache import CrossAttentionKVCache
from .samplers import Sampler, make_scheduler, step_kwargs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LatentLayout:
    """Where a duration lands in AudioLDM 2's spaces (the pipeline's own arithmetic)."""

    mel_frames: int  # rounded up to a multiple of the VAE's downsampling factor
    latent_shape: tuple[int, int, int]  # (channels, time, frequency)
    samples: int  # waveform length the clip is cut to


def resolve_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The UNet's compute dtype: "auto" is bf16 (or fp16) on CUDA and fp32 on a CPU."""
    if precision == "fp32" or device.type != "cuda":
        if precision in ("fp16", "bf16") and device.type != "cuda":
            log.info("precision %s needs a CUDA GPU; the CPU runs in fp32", precision)
        return torch.float32
    if precision == "fp16":
        return torch.float16
    if precision == "bf16" or (precision == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


class Art2MusPipeline:
    """Runs a loaded :class:`ModelBundle`; one per process (it holds the models)."""

    def __init__(
        self,
        bundle: ModelBundle,
        device: str | torch.device = "cpu",
        *,
        sampler: Sampler | str = Sampler.DDIM,
        kv_cache: bool = True,
    ):
        from diffusers import DDIMScheduler

        self.bundle = bundle
        self.device = torch.device(device)
        self.unet = bundle.unet
        self.dtype = next(self.unet.parameters()).dtype
        self.scheduler_config = DDIMScheduler.from_config(bundle.scheduler_config).config
        self.sampler = Sampler(sampler)
        # Off for a UNet that will be compiled or graph-captured (see kv_cache.py).
        self.kv_cache = CrossAttentionKVCache(bundle.unet) if kv_cache else None
        self.vae_scale_factor = 2 ** (len(bundle.vae.config.block_out_channels) - 1)
        vocoder = bundle.vocoder.config
        self.sample_rate = int(vocoder.sampling_rate)
        self.hop_length = int(np.prod(vocoder.upsample_rates))
        self.mel_bins = int(vocoder.model_in_dim)
        c = bundle.conditioning
        self.prompt_embeds = c["prompt_embeds"].to(self.device)
        self.attention_mask = c["attention_mask"].to(self.device)
        self.negative_prompt_embeds = c["negative_prompt_embeds"].to(self.device)
        self.negative_attention_mask = c["negative_attention_mask"].to(self.device)
        self.negative_loa = c["negative_generated_prompt_embeds"].to(self.device)
        # Largest batch that fitted after an out-of-memory error (None: not limited yet).
        self.max_batch: int | None = None

    # ------------------------------------------------------------------ conditioning

    @torch.no_grad()
    def image_embeddings(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Vision-encoder embeddings (B, dim) of RGB uint8 images."""
        return self.bundle.encoder.encode(list(images)).float()

    @torch.no_grad()
    def loa_embeddings(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """Image embeddings → aligner tokens → GPT-2 → (B, 8, D_lm) LoA embeddings."""
        aligner = self.bundle.aligner
        tokens = aligner(image_embeds.to(self.device, next(aligner.parameters()).dtype))
        lm = self.bundle.language_model
        return generate_loa(lm, tokens.to(next(lm.parameters()).dtype), LOA_TOKENS).float()

    # ------------------------------------------------------------------ diffusion

    def layout(self, duration: float) -> LatentLayout:
        """Latent shape and waveform length for ``duration`` seconds (as AudioLDM2Pipeline)."""
        seconds_per_frame = self.hop_length / self.sample_rate
        frames = int(duration / seconds_per_frame)
        if frames % self.vae_scale_factor:
            frames = int(np.ceil(frames / self.vae_scale_factor)) * self.vae_scale_factor
        shape = (
            int(self.unet.config.in_channels),
            frames // self.vae_scale_factor,
            self.mel_bins // self.vae_scale_factor,
        )
        return LatentLayout(frames, shape, int(duration * self.sample_rate))

    def initial_noise(self, seeds: Sequence[int], shape: tuple[int, ...]) -> torch.Tensor:
        """Gaussian latents, one CPU generator per artwork (identical on every device)."""
        noise = [
            torch.randn(
                (1, *shape), generator=torch.Generator("cpu").manual_seed(int(seed)), dtype=torch.float32
            )
            for seed in seeds
        ]
        return torch.cat(noise).to(self.device)

    def _stream_inputs(self, loa: torch.Tensor, guided: bool):
        """Both cross-attention streams for a batch, the negative branch first (as diffusers)."""
        n = loa.shape[0]
        t5 = self.prompt_embeds.expand(n, -1, -1)
        mask = self.attention_mask.expand(n, -1)
        if guided:
            loa = torch.cat([self.negative_loa.expand(n, -1, -1), loa])
            t5 = torch.cat([self.negative_prompt_embeds.expand(n, -1, -1), t5])
            mask = torch.cat([self.negative_attention_mask.expand(n, -1), mask])
        return loa.to(self.dtype), t5.to(self.dtype), mask

    @torch.no_grad()
    def denoise(
        self,
        loa: torch.Tensor,
        seeds: Sequence[int],
        *,
        steps: int,
        guidance_scale: float,
        duration: float,
        on_step: Callable[[int, int], None] | None = None,
    ) -> torch.Tensor:
        """Sampling with classifier-free guidance; returns fp32 latents (B, C, T, F)."""
        scheduler = make_scheduler(self.sampler, self.scheduler_config)  # per call: it has state
        # On the host: the scheduler indexes its (CPU) tables with Python ints, never with a
        # device tensor, and the UNet gets its timesteps from one copy made before the loop.
        scheduler.set_timesteps(steps)
        host_timesteps = [int(t) for t in scheduler.timesteps]
        device_timesteps = scheduler.timesteps.to(self.device)
        if hasattr(scheduler, "set_begin_index"):
            scheduler.set_begin_index(0)  # multistep solvers would otherwise look t up on the device
        extra = step_kwargs(self.sampler)
        guided = guidance_scale > 1.0
        loa_in, t5_in, mask_in = self._stream_inputs(loa.to(self.device), guided)
        latents = self.initial_noise(seeds, self.layout(duration).latent_shape)
        latents = latents * scheduler.init_noise_sigma
        with self._constant_streams(loa_in, t5_in):
            for i, t in enumerate(host_timesteps):
                model_input = torch.cat([latents] * 2) if guided else latents
                model_input = scheduler.scale_model_input(model_input, t)
                noise = self.unet(
                    model_input.to(self.dtype),
                    device_timesteps[i],
                    encoder_hidden_states=loa_in,
                    encoder_hidden_states_1=t5_in,
                    encoder_attention_mask_1=mask_in,
                    return_dict=False,
                )[0].float()
                if guided:
                    uncond, cond = noise.chunk(2)
                    noise = uncond + guidance_scale * (cond - uncond)
                latents = scheduler.step(noise, t, latents, **extra).prev_sample
                if on_step is not None:
                    on_step(i + 1, steps)
        return latents

    def _constant_streams(self, *streams: torch.Tensor):
        if self.kv_cache is None:
            return contextlib.nullcontext()
        return self.kv_cache.holding(*streams)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, duration: float) -> np.ndarray:
        """Latents → mel spectrogram (VAE) → waveform (HiFi-GAN), cut to ``duration``."""
        vae, vocoder = self.bundle.vae, self.bundle.vocoder
        # Multiplied by the reciprocal, not divided, exactly as the pipeline does: x / s and
        # (1 / s) * x round differently, and the parity test compares bit for bit.
        latents = 1 / vae.config.scaling_factor * latents.to(self.device, next(vae.parameters()).dtype)
        mel = vae.decode(latents).sample
        if mel.dim() == 4:
            mel = mel.squeeze(1)
        waveform = vocoder(mel.to(next(vocoder.parameters()).dtype)).float().cpu()
        return waveform[:, : self.layout(duration).samples].numpy()

    # ------------------------------------------------------------------ batches

    #: Batch used where free memory cannot be measured (a CPU), and the most ever chosen.
    CPU_BATCH, MAX_AUTO_BATCH = 4, 32
    #: Share of the free GPU memory the batch may fill (the allocator fragments; other
    #: processes may start).
    FREE_MEMORY_SHARE = 0.8

    @torch.no_grad()
    def auto_batch_size(self, duration: float) -> int:
        """The batch that fits the free GPU memory for ``duration``-s passes (a CPU: 4).

        One guided UNet call and one decode at batch 1 measure what a clip adds on top of
        the loaded models (PyTorch's peak-allocated counter); the free memory the driver
        reports, times FREE_MEMORY_SHARE, divided by that gives the batch. An out-of-memory
        error later still halves it (generate_from_loa).
        """
        if self.device.type != "cuda":
            return self.CPU_BATCH
        layout = self.layout(duration)
        torch.cuda.synchronize(self.device)
        base = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        loa = self.negative_loa.expand(1, -1, -1)
        loa_in, t5_in, mask_in = self._stream_inputs(loa, guided=True)
        sample = torch.zeros(2, *layout.latent_shape, device=self.device, dtype=self.dtype)
        self.unet(
            sample,
            torch.tensor(500, device=self.device),
            encoder_hidden_states=loa_in,
            encoder_hidden_states_1=t5_in,
            encoder_attention_mask_1=mask_in,
            return_dict=False,
        )
        self.decode(torch.zeros(1, *layout.latent_shape, device=self.device), duration)
        per_clip = max(torch.cuda.max_memory_allocated(self.device) - base, 1)
        torch.cuda.empty_cache()
        free, _total = torch.cuda.mem_get_info(self.device)
        size = int(self.FREE_MEMORY_SHARE * free // per_clip)
        log.info(
            "batch size from free GPU memory: %.1f GiB free, %.2f GiB per %.1f-s clip -> %d",
            free / 2**30,
            per_clip / 2**30,
            duration,
            size,
        )
        return max(1, min(self.MAX_AUTO_BATCH, size))

    def generate(
        self,
        images: Sequence[np.ndarray],
        seeds: Sequence[int],
        *,
        steps: int,
        guidance_scale: float,
        duration: float,
        batch_size: int = 4,
        on_step: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """One 16 kHz mono waveform per (image, seed): float32 array (B, samples)."""
        if len(images) != len(seeds):
            raise ValueError(f"{len(images)} images but {len(seeds)} seeds")
        if not images:
            return np.zeros((0, self.layout(duration).samples), np.float32)
        loa = self.loa_embeddings(self.image_embeddings(images))
        return self.generate_from_loa(
            loa,
            seeds,
            steps=steps,
            guidance_scale=guidance_scale,
            duration=duration,
            batch_size=batch_size,
            on_step=on_step,
        )

    def generate_from_loa(
        self,
        loa: torch.Tensor,
        seeds: Sequence[int],
        *,
        steps: int,
        guidance_scale: float,
        duration: float,
        batch_size: int = 4,
        on_step: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Denoise and decode in batches, halving the batch on CUDA out-of-memory."""
        total = len(seeds)
        size = max(1, min(batch_size, self.max_batch or batch_size, total))
        waves: list[np.ndarray] = []
        start = 0
        while start < total:
            end = min(start + size, total)
            try:
                latents = self.denoise(
                    loa[start:end],
                    seeds[start:end],
                    steps=steps,
                    guidance_scale=guidance_scale,
                    duration=duration,
                    on_step=on_step,
                )
                waves.append(self.decode(latents, duration))
            except torch.cuda.OutOfMemoryError as exc:
                if size == 1:
                    raise GenerationError(
                        f"the GPU ran out of memory generating one {duration:g}-s clip "
                        f"({steps} steps); free GPU memory or shorten engine.duration"
                    ) from exc
                size = max(1, size // 2)
                self.max_batch = size
                log.warning("CUDA out of memory: retrying with batches of %d artwork(s)", size)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            start = end
        return np.concatenate(waves)
