"""The training objective: Min-SNR-γ weighted noise prediction through the frozen model.

    L_t = min(SNR_t, γ) / SNR_t · ‖ε − ε_θ(z_t, t, c)‖²,   SNR_t = ᾱ_t / (1 − ᾱ_t),  γ = 5

The conditioning ``c`` is built exactly as at generation time (``Art2MusPipeline``): image
embedding → aligner → ``generate_loa`` (GPT-2, frozen, in ``eval()`` so its 0.1 dropout stays
off) → the UNet's first cross-attention stream; the stored FLAN-T5 prompt → the second. The
pipeline's own methods run under ``no_grad``, so this calls the engine's parts directly and
gradients reach the aligner through the frozen UNet and GPT-2.
"""

from __future__ import annotations

import torch

from engine.engines.diffusion.conditioning import LOA_TOKENS, generate_loa

MIN_SNR_GAMMA = 5.0


def alphas_cumprod(scheduler_config: dict) -> torch.Tensor:
    """ᾱ_t of the bundle's noise schedule (the DDPM schedule AudioLDM 2 was trained with)."""
    from diffusers import DDPMScheduler

    known = {
        k: scheduler_config[k]
        for k in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas")
        if k in scheduler_config
    }
    alphas: torch.Tensor = DDPMScheduler(**known).alphas_cumprod  # type: ignore[attr-defined]
    return alphas.float()


def min_snr_weights(
    alphas: torch.Tensor, timesteps: torch.Tensor, gamma: float = MIN_SNR_GAMMA
) -> torch.Tensor:
    ab = alphas[timesteps]
    snr = ab / (1 - ab)
    return torch.clamp(snr, max=gamma) / snr


def conditioning(bundle, aligner, image_embeds: torch.Tensor) -> torch.Tensor:
    """(B, 8, D_lm) LoA embeddings, differentiable with respect to the aligner."""
    tokens = aligner(image_embeds)
    return generate_loa(bundle.language_model, tokens, LOA_TOKENS)


def weighted_loss(
    bundle,
    aligner,
    alphas: torch.Tensor,
    image_embeds: torch.Tensor,
    latents: torch.Tensor,
    noise: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    gamma: float = MIN_SNR_GAMMA,
    reduce: bool = True,
) -> torch.Tensor:
    """Mean (or per-sample) Min-SNR-γ loss of a batch of scaled VAE latents."""
    ab = alphas.to(latents.device)[timesteps].view(-1, 1, 1, 1)
    noisy = ab.sqrt() * latents + (1 - ab).sqrt() * noise
    loa = conditioning(bundle, aligner, image_embeds)
    n = latents.shape[0]
    c = bundle.conditioning
    unet_dtype = next(bundle.unet.parameters()).dtype
    pred = bundle.unet(
        noisy.to(unet_dtype),
        timesteps,
        encoder_hidden_states=loa.to(unet_dtype),
        encoder_hidden_states_1=c["prompt_embeds"].expand(n, -1, -1).to(unet_dtype),
        encoder_attention_mask_1=c["attention_mask"].expand(n, -1),
        return_dict=False,
    )[0].float()
    per_sample = ((pred - noise) ** 2).mean(dim=(1, 2, 3))
    per_sample = per_sample * min_snr_weights(alphas.to(latents.device), timesteps, gamma)
    return per_sample.mean() if reduce else per_sample
