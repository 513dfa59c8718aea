"""The Image Aligner: the one trained part of Art2Mus.

It maps a frozen vision encoder's image embedding to ``num_tokens`` vectors in GPT-2's input
space, which GPT-2 then turns into AudioLDM 2's "Language of Audio" (see ``conditioning``).

    CLIP (512-d)      → Upscaler 512→1024 → Projection 1024 → N×768   (N = 6 in the paper)
    ImageBind (1024-d) ────────────────────→ Projection 1024 → N×768   (N = 16 in the paper)

Upscaler (CLIP only): Linear(512→1024) → GELU → Linear(1024→1024) → LayerNorm(1024).
Why this shape: a single Linear followed by the (linear) Projection would collapse into one
linear map, so the Upscaler would add nothing; the GELU between two Linears gives it capacity
of its own. The closing LayerNorm puts every upscaled embedding on the same scale whatever the
norm of CLIP's (unnormalised) image_embeds, so the Projection sees inputs as steady as the
L2-normalised ImageBind embeddings it sees in the other configuration.

Projection Layer: one Linear(1024 → N·768) reshaped to (N, 768), the paper's "projection
layer" read literally; each token gets its own slice of the output.

Two architectures (config key ``architecture``, see :class:`AlignerArchitecture`):

* ``linear`` — the layers above, what ``training/`` trains;
* ``tanh-mlp`` — the authors' published ``ImageProjectionLayer`` (GitHub justivanr/art2mus_,
  2024): Linear(1024 → hidden) → Tanh → Linear(hidden → N·768), reshaped to (N, 768), with
  hidden = 1536 and N = 1 ("Art2Mus") or N = 4 ("Art2Mus-4"). Its parameters keep the authors'
  names (``projection1``, ``projection2``), so converting their ``.pt`` files
  (``convert_authors.py``) is a re-save, bit for bit.

The config key ``conditioning`` (see :class:`ConditioningRecipe`) records which pipeline the
aligner was trained with, because the authors' pipeline conditions the unguided branch of
classifier-free guidance differently from AudioLDM 2's (see ``bundle.compute_conditioning``).

On disk it is a diffusers model folder: ``config.json`` + ``diffusion_pytorch_model.safetensors``.
"""

from __future__ import annotations

import os
from enum import Enum, StrEnum
from pathlib import Path

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

from .checkpoints import CheckpointError, check_shapes, read_json, safetensors_shapes

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"

#: Tokens per image in the paper's best settings.
PAPER_NUM_TOKENS = {"imagebind": 16, "clip": 6}

#: The integer sizes every architecture has.
_SIZE_KEYS = ("input_dim", "embed_dim", "num_tokens", "token_dim")


class AlignerArchitecture(StrEnum):
    """The layers between the image embedding and GPT-2's input tokens."""

    LINEAR = "linear"  # this project's (optional Upscaler) + one Linear
    TANH_MLP = "tanh-mlp"  # the authors' published ImageProjectionLayer


class ConditioningRecipe(StrEnum):
    """How the pipeline the aligner was trained with builds the fixed (non-image) conditioning."""

    AUDIOLDM2 = "audioldm2"  # diffusers' AudioLDM2Pipeline: negative prompt padded to the prompt's length
    ART2MUS_2024 = "art2mus-2024"  # the authors' pipeline (see bundle.compute_conditioning)


class Upscaler(nn.Module):
    """Lifts a CLIP embedding (512-d) to the 1024-d space the Projection Layer expects."""

    def __init__(self, input_dim: int, embed_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, embed_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(embed_dim, embed_dim)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.fc2(self.act(self.fc1(x))))


class ImageAligner(ModelMixin, ConfigMixin):
    """Image embedding (B, input_dim) → GPT-2 input tokens (B, num_tokens, token_dim)."""

    config_name = CONFIG_NAME

    @register_to_config
    def __init__(
        self,
        input_dim: int = 1024,
        embed_dim: int = 1024,
        num_tokens: int = 16,
        token_dim: int = 768,
        architecture: str = AlignerArchitecture.LINEAR.value,
        conditioning: str = ConditioningRecipe.AUDIOLDM2.value,
    ):
        super().__init__()
        for key, value in (
            ("input_dim", input_dim),
            ("embed_dim", embed_dim),
            ("num_tokens", num_tokens),
            ("token_dim", token_dim),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ImageAligner config {key}={value!r}: must be a positive integer")
        arch = _choice(AlignerArchitecture, "architecture", architecture)
        _choice(ConditioningRecipe, "conditioning", conditioning)
        self.upscaler: nn.Module | None = None
        if arch is AlignerArchitecture.TANH_MLP:
            # embed_dim is the hidden width here (1536 in the authors' weights).
            self.projection1 = nn.Linear(input_dim, embed_dim)
            self.act1 = nn.Tanh()
            self.projection2 = nn.Linear(embed_dim, num_tokens * token_dim)
            return
        # The Upscaler exists only where the encoder's embedding is narrower than embed_dim (CLIP).
        self.upscaler = Upscaler(input_dim, embed_dim) if input_dim != embed_dim else None
        self.projection = nn.Linear(embed_dim, num_tokens * token_dim)

    @property
    def architecture(self) -> AlignerArchitecture:
        return AlignerArchitecture(self.config.architecture)

    def forward(self, image_embeds: torch.Tensor) -> torch.Tensor:
        if image_embeds.ndim != 2 or image_embeds.shape[1] != self.config.input_dim:
            raise ValueError(
                f"ImageAligner expects image embeddings of shape (batch, {self.config.input_dim}), "
                f"got {tuple(image_embeds.shape)}"
            )
        if self.architecture is AlignerArchitecture.TANH_MLP:
            tokens = self.projection2(self.act1(self.projection1(image_embeds)))
        else:
            x = self.upscaler(image_embeds) if self.upscaler is not None else image_embeds
            tokens = self.projection(x)
        return tokens.view(-1, self.config.num_tokens, self.config.token_dim)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> ImageAligner:
        """Load from a local folder, refusing a missing/corrupt file or a config/shape mismatch.

        Only local folders: the installation never fetches weights at run time.
        """
        folder = Path(pretrained_model_name_or_path)
        if not folder.is_dir():
            raise CheckpointError(f"{folder}: aligner folder not found")
        config_path = folder / CONFIG_NAME
        config = read_json(config_path, "aligner config")
        expected = cls.expected_shapes(config, config_path)
        weights = folder / WEIGHTS_NAME
        check_shapes(weights, safetensors_shapes(weights), expected)
        try:
            return super().from_pretrained(folder, **kwargs)
        except Exception as exc:  # anything left (e.g. a truncated tensor body) still names the file
            raise CheckpointError(f"{weights}: could not be loaded: {exc}") from exc

    @classmethod
    def expected_shapes(
        cls, config: dict, config_path: Path | str = CONFIG_NAME
    ) -> dict[str, tuple[int, ...]]:
        """The tensor shapes a config implies, built on the meta device (no memory, no init)."""
        known = {k: config[k] for k in (*_SIZE_KEYS, "architecture", "conditioning") if k in config}
        try:
            with torch.device("meta"):
                model = cls(**known)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{config_path}: {exc}") from exc
        return {key: tuple(t.shape) for key, t in model.state_dict().items()}


def _choice(enum: type[Enum], key: str, value: object) -> Enum:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(repr(e.value) for e in enum)
        raise ValueError(f"ImageAligner config {key}={value!r}: must be one of {allowed}") from None


def make_aligner(
    kind: str, *, input_dim: int | None = None, num_tokens: int | None = None, token_dim: int = 768
) -> ImageAligner:
    """A freshly initialised aligner for an encoder kind, with the paper's token count.

    ``input_dim`` defaults to the kind's usual embedding width (CLIP ViT-B/32: 512,
    ImageBind: 1024); pass the encoder's ``.dim`` for other CLIP sizes.
    """
    default_dims = {"clip": 512, "imagebind": 1024}
    if kind not in default_dims:
        raise ValueError(f"unknown encoder kind {kind!r}; expected one of {sorted(default_dims)}")
    return ImageAligner(
        input_dim=input_dim or default_dims[kind],
        embed_dim=1024,
        num_tokens=num_tokens or PAPER_NUM_TOKENS[kind],
        token_dim=token_dim,
    )
