"""Frozen vision encoders: RGB artwork → image embedding (CLIP 512-d or ImageBind 1024-d).

An encoder lives in a folder with ``encoder_config.json`` naming its kind:

* ``{"kind": "clip"}`` plus a transformers ``CLIPVisionModelWithProjection`` folder
  (``config.json``, ``model.safetensors``) and its ``preprocessor_config.json``.
  The embedding is ``image_embeds`` (``projection_dim`` wide: 512 for ViT-B/32), unnormalised,
  as ``CLIPModel.get_image_features`` gives it.
* ``{"kind": "imagebind", "config": {...sizes...}}`` plus ``model.safetensors`` holding
  ImageBind's own vision keys (see ``imagebind_vision``). The embedding is ImageBind's
  L2-normalised 1024-d vision embedding.

Preprocessing is each encoder's own (details in ``preprocessing``):

* CLIP: transformers' CLIP image processor, PIL backend (``CLIPImageProcessorPil``), read from
  the folder: shortest side → 224 bicubic, centre crop 224, /255, CLIP mean/std. The PIL
  backend is named explicitly because transformers 5 otherwise picks a torchvision backend
  where torchvision is installed (the GPU PC), whose resampling differs slightly; PIL is
  what CLIP was trained with.
* ImageBind: ``imagebind.data.load_and_transform_vision_data`` (torchvision ``Resize(224,
  BICUBIC)``, ``CenterCrop(224)``, ``ToTensor``, ``Normalize`` with CLIP mean/std on a PIL
  image), reproduced with PIL and numpy since torchvision is absent here. It differs from
  the CLIP processor only in how the crop offset is rounded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoints import CheckpointError, check_shapes, read_json, require_file, safetensors_shapes
from .imagebind_vision import (
    ImageBindVision,
    ImageBindVisionConfig,
    config_from_state_dict,
    vision_state_dict,
)
from .preprocessing import IMAGEBIND_SPEC, PreprocessSpec, as_rgb_array, preprocess, spec_from_clip_processor

ENCODER_CONFIG = "encoder_config.json"
WEIGHTS = "model.safetensors"
KINDS = ("clip", "imagebind")


class VisionEncoder(nn.Module):
    """A frozen image encoder: ``preprocess`` (numpy → pixels), then ``embed`` (pixels → (B, dim))."""

    kind: str
    dim: int
    image_size: int = 224

    @property
    def preprocess_spec(self) -> PreprocessSpec:
        """The preprocessing as plain numbers, for the ONNX conditioner (which runs without torch)."""
        raise NotImplementedError

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(preprocess(images, self.preprocess_spec))

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.embed(pixel_values)

    def encode(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Preprocess and embed in one call, without gradients (the encoder is frozen)."""
        param = next(self.parameters())
        with torch.no_grad():
            return self.embed(self.preprocess(images).to(param.device, param.dtype))


class ClipVisionEncoder(VisionEncoder):
    kind = "clip"

    def __init__(self, model, processor):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.processor = processor
        self.dim = int(model.config.projection_dim)
        self.image_size = int(processor.crop_size["height"])

    @property
    def preprocess_spec(self) -> PreprocessSpec:
        return spec_from_clip_processor(self.processor)

    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        # transformers' own processor is the reference for CLIP; the spec mirrors it for ONNX.
        if len(images) == 0:
            raise ValueError("no images to preprocess")
        arrays = [as_rgb_array(image, i) for i, image in enumerate(images)]
        return self.processor(images=arrays, return_tensors="pt")["pixel_values"]

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).image_embeds

    @classmethod
    def from_folder(cls, folder: Path) -> ClipVisionEncoder:
        from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModelWithProjection

        config_path = folder / "config.json"
        read_json(config_path, "CLIP vision config")
        require_file(folder / "preprocessor_config.json", "CLIP image processor config")
        try:
            config = CLIPVisionConfig.from_pretrained(folder)
        except Exception as exc:
            raise CheckpointError(f"{config_path}: not a CLIP vision config: {exc}") from exc
        with torch.device("meta"):
            expected = {
                k: tuple(v.shape) for k, v in CLIPVisionModelWithProjection(config).state_dict().items()
            }
        weights = folder / WEIGHTS
        check_shapes(weights, safetensors_shapes(weights), expected)
        try:
            model = CLIPVisionModelWithProjection.from_pretrained(folder, local_files_only=True)
            processor = CLIPImageProcessorPil.from_pretrained(folder, local_files_only=True)
        except Exception as exc:
            raise CheckpointError(f"{folder}: CLIP encoder could not be loaded: {exc}") from exc
        crop = processor.crop_size.get("height")
        if crop != config.image_size or processor.crop_size.get("width") != config.image_size:
            raise CheckpointError(
                f"{folder / 'preprocessor_config.json'}: crop_size {dict(processor.crop_size)} does not match "
                f"the model's image_size {config.image_size} in config.json"
            )
        return cls(model, processor)


class ImageBindVisionEncoder(VisionEncoder):
    kind = "imagebind"

    def __init__(self, model: ImageBindVision):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.dim = model.config.embed_dim
        self.image_size = model.config.image_size

    @property
    def preprocess_spec(self) -> PreprocessSpec:
        size = self.image_size
        return PreprocessSpec(size=size, crop=size, crop_rounding=IMAGEBIND_SPEC.crop_rounding)

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values)

    @classmethod
    def from_folder(cls, folder: Path, sizes: dict) -> ImageBindVisionEncoder:
        from safetensors.torch import load_file

        try:
            config = ImageBindVisionConfig(**sizes)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{folder / ENCODER_CONFIG}: bad ImageBind config: {exc}") from exc
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in ImageBindVision(config).state_dict().items()}
        weights = folder / WEIGHTS
        check_shapes(weights, safetensors_shapes(weights), expected)
        model = ImageBindVision(config)
        try:
            model.load_state_dict(load_file(weights), strict=True)
        except Exception as exc:
            raise CheckpointError(f"{weights}: could not be loaded: {exc}") from exc
        return cls(model)


def load_vision_encoder(folder: str | Path) -> VisionEncoder:
    """Load the encoder saved in ``folder`` (its ``encoder_config.json`` names the kind)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: encoder folder not found")
    config_path = folder / ENCODER_CONFIG
    config = read_json(config_path, "encoder config")
    kind = config.get("kind")
    if kind == "clip":
        return ClipVisionEncoder.from_folder(folder)
    if kind == "imagebind":
        sizes = config.get("config", {})
        if not isinstance(sizes, dict):
            raise CheckpointError(f"{config_path}: 'config' must be an object of ImageBind sizes")
        return ImageBindVisionEncoder.from_folder(folder, sizes)
    raise CheckpointError(f"{config_path}: kind {kind!r} is not one of {list(KINDS)}")


def _write_encoder_config(folder: Path, config: dict) -> None:
    (folder / ENCODER_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def save_imagebind_encoder(model: ImageBindVision, folder: str | Path) -> Path:
    """Save an ImageBind vision tower in the installation's format (config + safetensors)."""
    from dataclasses import asdict

    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS), metadata={"format": "pt", "source": "imagebind vision tower"})
    _write_encoder_config(folder, {"kind": "imagebind", "config": asdict(model.config)})
    return folder


def save_clip_encoder(model, processor, folder: str | Path) -> Path:
    """Save a CLIPVisionModelWithProjection + its image processor in the installation's format."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    _write_encoder_config(folder, {"kind": "clip"})
    return folder


def read_imagebind_checkpoint(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    """The whole-model state dict of ``imagebind_huge.pth`` (memory-mapped, not copied into RAM)."""
    checkpoint = Path(checkpoint)
    require_file(checkpoint, "ImageBind checkpoint")
    try:
        return torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:
        raise CheckpointError(f"{checkpoint}: not a readable PyTorch checkpoint: {exc}") from exc


def imagebind_vision_from_checkpoint(
    state: dict[str, torch.Tensor], checkpoint: Path, heads: int = 16
) -> ImageBindVision:
    """The vision tower out of a whole-model ImageBind state dict read from ``checkpoint``."""
    vision = vision_state_dict(state)
    if not vision:
        raise CheckpointError(f"{checkpoint}: no ImageBind vision tensors (modality_*.vision.*) found")
    try:
        config = config_from_state_dict(vision, heads=heads)
        model = ImageBindVision(config)
        model.load_state_dict(vision, strict=True)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{checkpoint}: ImageBind vision tensors do not form a vision tower: {exc}"
        ) from exc
    return model


def convert_imagebind_checkpoint(checkpoint: str | Path, folder: str | Path, heads: int = 16) -> Path:
    """imagebind_huge.pth (the whole multimodal model) → an encoder folder with only the vision tower."""
    checkpoint = Path(checkpoint)
    state = read_imagebind_checkpoint(checkpoint)
    return save_imagebind_encoder(imagebind_vision_from_checkpoint(state, checkpoint, heads), folder)


def convert_clip_checkpoint(source: str | Path, folder: str | Path) -> Path:
    """A local transformers CLIP folder (e.g. openai/clip-vit-base-patch32) → an encoder folder.

    Keeps the vision tower and its projection only; the text tower is dropped.
    """
    from transformers import CLIPImageProcessorPil, CLIPVisionModelWithProjection

    source = Path(source)
    if not source.is_dir():
        raise CheckpointError(f"{source}: CLIP folder not found")
    try:
        model = CLIPVisionModelWithProjection.from_pretrained(source, local_files_only=True)
        processor = CLIPImageProcessorPil.from_pretrained(source, local_files_only=True)
    except Exception as exc:
        raise CheckpointError(f"{source}: not a loadable CLIP checkpoint: {exc}") from exc
    return save_clip_encoder(model, processor, folder)


def make_tiny_encoder(kind: str, folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny random encoder of ``kind`` in the real format, for tests and tiny bundles.

    It keeps the real input size (224 px) and output width (CLIP 512, ImageBind 1024) so that
    everything downstream has real shapes; only the transformer inside is tiny.
    """
    generator = torch.Generator().manual_seed(seed)
    if kind == "imagebind":
        config = ImageBindVisionConfig(width=32, layers=2, heads=4, mlp_ratio=4, embed_dim=1024)
        return save_imagebind_encoder(ImageBindVision(config).init_random(generator), folder)
    if kind == "clip":
        from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModelWithProjection

        torch.manual_seed(seed)
        clip_config = CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=224,
            patch_size=32,
            projection_dim=512,
        )
        return save_clip_encoder(CLIPVisionModelWithProjection(clip_config), CLIPImageProcessorPil(), folder)
    raise ValueError(f"unknown encoder kind {kind!r}; expected one of {list(KINDS)}")
