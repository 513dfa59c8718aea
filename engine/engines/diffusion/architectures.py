"""Configurations of the AudioLDM 2 components, at full size and at a tiny test size.

The full size is the architecture of the `cvssp/audioldm2-music` snapshot on the Hugging Face
hub (the benchmark builds it with random weights). The tiny size keeps every structural
feature that matters for correctness -- two cross-attention streams of different widths, a
VAE that downsamples the mel spectrogram by 4, 8 latent channels, a HiFi-GAN that turns one
mel frame into 160 samples at 16 kHz -- so that clip lengths, latent shapes and the code
paths are the real ones, while a 10-s clip generates in seconds on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

# AudioLDM 2 constants.
SAMPLE_RATE = 16000
MEL_BINS = 64
HOP_LENGTH = 160  # samples per mel frame: the product of the vocoder's upsample rates
VAE_SCALING_FACTOR = 0.4110932946
LATENT_CHANNELS = 8
LOA_TOKENS = 8  # GPT-2 generates this many "Language of Audio" embeddings

PROMPT = "Music representing the content of this artwork"
NEGATIVE_PROMPT = "Low quality"
# The authors' pipeline's negative prompt (their test_art2mus.py), with its full stop.
AUTHORS_NEGATIVE_PROMPT = "Low quality."


@dataclass(frozen=True)
class Sizes:
    """The widths that tie the components together."""

    unet_channels: tuple[int, ...]
    unet_layers: int
    unet_heads: int
    unet_groups: int
    vae_channels: tuple[int, ...]
    vae_layers: int
    vae_groups: int
    vocoder_channels: int
    vocoder_kernels: tuple[int, ...]
    vocoder_resblock_kernels: tuple[int, ...]
    lm_dim: int  # GPT-2 hidden size = the LoA stream's cross-attention width
    lm_layers: int
    lm_heads: int
    lm_vocab: int
    t5_dim: int  # FLAN-T5 hidden size = the text stream's cross-attention width
    clap_dim: int


FULL = Sizes(
    unet_channels=(128, 256, 384, 640),
    unet_layers=2,
    unet_heads=8,
    unet_groups=32,
    vae_channels=(128, 256, 512),
    vae_layers=2,
    vae_groups=32,
    vocoder_channels=1024,
    vocoder_kernels=(16, 16, 8, 4, 4),
    vocoder_resblock_kernels=(3, 7, 11),
    lm_dim=768,
    lm_layers=12,
    lm_heads=12,
    lm_vocab=50257,
    t5_dim=1024,
    clap_dim=512,
)

# Different widths for the two streams, so a mix-up fails loudly instead of silently.
TINY = Sizes(
    unet_channels=(16, 32),
    unet_layers=1,
    unet_heads=2,
    unet_groups=8,
    vae_channels=(8, 16, 16),
    vae_layers=1,
    vae_groups=4,
    vocoder_channels=32,
    vocoder_kernels=(10, 8, 4, 4, 4),
    vocoder_resblock_kernels=(3,),
    lm_dim=32,
    lm_layers=2,
    lm_heads=2,
    lm_vocab=64,
    t5_dim=48,
    clap_dim=16,
)


def unet_config(s: Sizes) -> dict:
    n = len(s.unet_channels)
    return dict(
        sample_size=256,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        block_out_channels=s.unet_channels,
        layers_per_block=s.unet_layers,
        norm_num_groups=s.unet_groups,
        attention_head_dim=s.unet_heads,
        # Per block: a self-attention-only transformer, the GPT-2 (LoA) stream, the T5 stream.
        cross_attention_dim=[[None, s.lm_dim, s.t5_dim]] * n,
    )


def vae_config(s: Sizes) -> dict:
    n = len(s.vae_channels)
    return dict(
        in_channels=1,
        out_channels=1,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        block_out_channels=s.vae_channels,
        layers_per_block=s.vae_layers,
        latent_channels=LATENT_CHANNELS,
        norm_num_groups=s.vae_groups,
        sample_size=1024,
        scaling_factor=VAE_SCALING_FACTOR,
    )


def vocoder_config(s: Sizes) -> dict:
    return dict(
        model_in_dim=MEL_BINS,
        sampling_rate=SAMPLE_RATE,
        upsample_initial_channel=s.vocoder_channels,
        upsample_rates=[5, 4, 2, 2, 2],  # product 160 = HOP_LENGTH
        upsample_kernel_sizes=list(s.vocoder_kernels),
        resblock_kernel_sizes=list(s.vocoder_resblock_kernels),
        resblock_dilation_sizes=[[1, 3, 5]] * len(s.vocoder_resblock_kernels),
        normalize_before=False,
        # The hub's 0.01 shrinks a narrow random vocoder's output to ~1e-10; 0.2 keeps the
        # tiny one audible, so loudness matching and listening tests see real signal.
        initializer_range=0.01 if s is FULL else 0.2,
    )


def gpt2_config(s: Sizes) -> dict:
    return dict(
        n_embd=s.lm_dim,
        n_layer=s.lm_layers,
        n_head=s.lm_heads,
        vocab_size=s.lm_vocab,
        n_positions=1024 if s is FULL else 64,
        bos_token_id=s.lm_vocab - 1,
        eos_token_id=s.lm_vocab - 1,
        # AudioLDM 2's language model config carries the LoA length.
        max_new_tokens=LOA_TOKENS,
    )


def scheduler_config() -> dict:
    return dict(
        num_train_timesteps=1000,
        beta_start=0.0015,
        beta_end=0.0195,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
    )


def build_models(s: Sizes, seed: int = 0) -> dict:
    """Random-weight UNet, VAE, vocoder, GPT-2 and DDIM scheduler (the runtime components)."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler
    from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2UNet2DConditionModel
    from transformers import GPT2Config, GPT2LMHeadModel, SpeechT5HifiGan, SpeechT5HifiGanConfig

    torch.manual_seed(seed)
    models = {
        "unet": AudioLDM2UNet2DConditionModel(**unet_config(s)),
        "vae": AutoencoderKL(**vae_config(s)),
        "vocoder": SpeechT5HifiGan(SpeechT5HifiGanConfig(**vocoder_config(s))),
        "language_model": GPT2LMHeadModel(GPT2Config(**gpt2_config(s))),
        "scheduler": DDIMScheduler(**scheduler_config()),
    }
    for name, model in models.items():
        if name != "scheduler":
            model.eval()
    return models
