"""ImageBind's vision tower (ViT-H/14, 1024-d output) without the ``imagebind`` package.

The ``imagebind`` package needs torchvision, timm, ftfy and more just to build its model; the
installation needs only the vision tower. This module rebuilds that tower so that its
``state_dict`` keys are *exactly* the vision keys of ``imagebind_huge.pth``, so a real
checkpoint loads with no renaming:

=============================================================  ===========================
ImageBind key (imagebind_huge.pth)                             shape (huge)
=============================================================  ===========================
modality_preprocessors.vision.cls_token                        (1, 1, 1280)
modality_preprocessors.vision.rgbt_stem.proj.1.weight          (1280, 3, 2, 14, 14)  Conv3d, no bias
modality_preprocessors.vision.pos_embedding_helper.pos_embed   (1, 257, 1280)
modality_trunks.vision.pre_transformer_layer.0.{weight,bias}   (1280,)   ln_pre, eps 1e-6
modality_trunks.vision.blocks.{i}.norm_1.{weight,bias}         (1280,)   eps 1e-6
modality_trunks.vision.blocks.{i}.attn.in_proj_weight          (3840, 1280)  q|k|v stacked
modality_trunks.vision.blocks.{i}.attn.in_proj_bias            (3840,)
modality_trunks.vision.blocks.{i}.attn.out_proj.{weight,bias}  (1280, 1280), (1280,)
modality_trunks.vision.blocks.{i}.norm_2.{weight,bias}         (1280,)
modality_trunks.vision.blocks.{i}.mlp.fc1.{weight,bias}        (5120, 1280), (5120,)
modality_trunks.vision.blocks.{i}.mlp.fc2.{weight,bias}        (1280, 5120), (1280,)
modality_heads.vision.0.{weight,bias}                          (1280,)   final LayerNorm, eps 1e-6
modality_heads.vision.2.weight                                 (1024, 1280)  Linear, no bias
modality_postprocessors.vision                                 (no tensors: L2 normalise)
=============================================================  ===========================

(i = 0..31.) The computation follows ImageBind's ``imagebind_model.py``: the image is
repeated into a 2-frame clip ("PadIm2Video", repeat) and cut into 2×14×14 tubelets by the
Conv3d (so one temporal position, 16×16 spatial patches at 224 px), a cls token is
prepended, learned position embeddings are added, ``ln_pre``, then 32 pre-norm blocks
(``x + attn(norm_1(x))``, ``x + mlp(norm_2(x))``, exact GELU), then the head takes the
LayerNorm-ed cls token through a bias-free Linear, and the result is L2-normalised.
Attention uses the ``nn.MultiheadAttention`` parameter layout of ImageBind (stacked
``in_proj``) but runs batch-first through ``scaled_dot_product_attention``, which is the
same arithmetic and exports cleanly to ONNX.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

PREFIXES = (
    "modality_preprocessors.vision.",
    "modality_trunks.vision.",
    "modality_heads.vision.",
    "modality_postprocessors.vision.",
)


@dataclass(frozen=True)
class ImageBindVisionConfig:
    """Sizes of the vision tower; the defaults are imagebind_huge's."""

    image_size: int = 224
    patch_size: int = 14
    num_frames: int = 2  # the image is repeated into this many frames (PadIm2Video ntimes)
    kernel_frames: int = 2  # temporal size of the Conv3d kernel and stride
    width: int = 1280
    layers: int = 32
    heads: int = 16
    mlp_ratio: int = 4
    embed_dim: int = 1024

    def __post_init__(self) -> None:
        for key, value in asdict(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ImageBind vision config {key}={value!r}: must be a positive integer")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}"
            )
        if self.num_frames % self.kernel_frames:
            raise ValueError(
                f"num_frames {self.num_frames} is not a multiple of kernel_frames {self.kernel_frames}"
            )
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")

    @property
    def num_patches(self) -> int:
        return (self.num_frames // self.kernel_frames) * (self.image_size // self.patch_size) ** 2


class PadIm2Video(nn.Module):
    """(B, C, H, W) image → (B, C, T, H, W) clip of T identical frames."""

    def __init__(self, num_frames: int):
        super().__init__()
        self.num_frames = num_frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(2).expand(-1, -1, self.num_frames, -1, -1)


class _Stem(nn.Module):
    def __init__(self, config: ImageBindVisionConfig):
        super().__init__()
        kernel = (config.kernel_frames, config.patch_size, config.patch_size)
        # Index 1 in this Sequential is what makes the key "rgbt_stem.proj.1.weight".
        self.proj = nn.Sequential(
            PadIm2Video(config.num_frames),
            nn.Conv3d(3, config.width, kernel_size=kernel, stride=kernel, bias=False),
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.proj(pixel_values).flatten(2).transpose(1, 2)  # B, T·H·W, width


class _PosEmbedding(nn.Module):
    def __init__(self, config: ImageBindVisionConfig):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches + 1, config.width))


class _Preprocessor(nn.Module):
    def __init__(self, config: ImageBindVisionConfig):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.width))
        self.rgbt_stem = _Stem(config)
        self.pos_embedding_helper = _PosEmbedding(config)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        tokens = self.rgbt_stem(pixel_values)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        return torch.cat([cls, tokens], dim=1) + self.pos_embedding_helper.pos_embed


class _Attention(nn.Module):
    """Self-attention with nn.MultiheadAttention's parameter names, batch-first."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        qkv = qkv.view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, width))


class _Mlp(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, config: ImageBindVisionConfig):
        super().__init__()
        self.attn = _Attention(config.width, config.heads)
        self.norm_1 = nn.LayerNorm(config.width, eps=1e-6)
        self.mlp = _Mlp(config.width, config.mlp_ratio * config.width)
        self.norm_2 = nn.LayerNorm(config.width, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm_1(x))
        return x + self.mlp(self.norm_2(x))


class _Trunk(nn.Module):
    def __init__(self, config: ImageBindVisionConfig):
        super().__init__()
        self.pre_transformer_layer = nn.Sequential(nn.LayerNorm(config.width, eps=1e-6))
        self.blocks = nn.Sequential(*[_Block(config) for _ in range(config.layers)])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.pre_transformer_layer(tokens))


class _SelectCls(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


class _Normalize(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=-1, p=2)


class ImageBindVision(nn.Module):
    """pixel_values (B, 3, 224, 224), CLIP-normalised → L2-normalised embeddings (B, 1024)."""

    def __init__(self, config: ImageBindVisionConfig | None = None):
        super().__init__()
        self.config = config or ImageBindVisionConfig()
        c = self.config
        # ModuleDicts keyed "vision" reproduce ImageBind's key prefixes exactly.
        self.modality_preprocessors = nn.ModuleDict({"vision": _Preprocessor(c)})
        self.modality_trunks = nn.ModuleDict({"vision": _Trunk(c)})
        self.modality_heads = nn.ModuleDict(
            {
                "vision": nn.Sequential(
                    nn.LayerNorm(c.width, eps=1e-6),
                    _SelectCls(),
                    nn.Linear(c.width, c.embed_dim, bias=False),
                )
            }
        )
        self.modality_postprocessors = nn.ModuleDict({"vision": _Normalize()})

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        size = self.config.image_size
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (3, size, size):
            raise ValueError(
                f"ImageBind expects pixel_values of shape (batch, 3, {size}, {size}), got {tuple(pixel_values.shape)}"
            )
        tokens = self.modality_preprocessors["vision"](pixel_values)
        tokens = self.modality_trunks["vision"](tokens)
        return self.modality_postprocessors["vision"](self.modality_heads["vision"](tokens))

    @torch.no_grad()
    def init_random(self, generator: torch.Generator | None = None) -> ImageBindVision:
        """Initialise like ImageBind does (OpenCLIP-style tokens, Xavier linears), for tiny test models."""
        scale = self.config.width**-0.5
        pre = self.modality_preprocessors["vision"]
        pre.cls_token.normal_(generator=generator).mul_(scale)
        pre.pos_embedding_helper.pos_embed.normal_(generator=generator).mul_(scale)
        conv = pre.rgbt_stem.proj[1].weight
        conv.uniform_(-1.0, 1.0, generator=generator).mul_(1.0 / math.sqrt(conv[0].numel()))
        for module in self.modules():
            if isinstance(module, _Attention):
                bound = math.sqrt(6.0 / (module.in_proj_weight.shape[0] / 3 + module.in_proj_weight.shape[1]))
                module.in_proj_weight.uniform_(-bound, bound, generator=generator)
            elif isinstance(module, nn.Linear):
                bound = math.sqrt(6.0 / (module.in_features + module.out_features))
                module.weight.uniform_(-bound, bound, generator=generator)
                if module.bias is not None:
                    module.bias.zero_()
        return self


def vision_state_dict(checkpoint: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The vision tower's tensors out of a whole-model ImageBind state dict (other modalities dropped)."""
    return {key: value for key, value in checkpoint.items() if key.startswith(PREFIXES)}


def config_from_state_dict(state: dict[str, torch.Tensor], heads: int = 16) -> ImageBindVisionConfig:
    """Infer the tower's sizes from its tensors (heads cannot be inferred; ImageBind huge uses 16)."""
    conv = state["modality_preprocessors.vision.rgbt_stem.proj.1.weight"]
    pos = state["modality_preprocessors.vision.pos_embedding_helper.pos_embed"]
    head = state["modality_heads.vision.2.weight"]
    fc1 = state["modality_trunks.vision.blocks.0.mlp.fc1.weight"]
    width, _, kernel_frames, patch, _ = conv.shape
    layers = 1 + max(
        int(key.split(".")[3]) for key in state if key.startswith("modality_trunks.vision.blocks.")
    )
    spatial = int(round(math.sqrt(pos.shape[1] - 1)))
    return ImageBindVisionConfig(
        image_size=spatial * patch,
        patch_size=patch,
        num_frames=kernel_frames,  # ImageBind: video_frames=2 frames, one temporal patch
        kernel_frames=kernel_frames,
        width=width,
        layers=layers,
        heads=heads,
        mlp_ratio=fc1.shape[0] // width,
        embed_dim=head.shape[0],
    )
