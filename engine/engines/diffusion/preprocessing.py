"""Image preprocessing for the vision encoders with PIL and numpy only (no torch).

Both encoders want CLIP-style pixels: shortest side resized to ``size`` with PIL bicubic
(long side ``int(size·long/short)``), a centre crop of ``crop``, /255, then CLIP's mean/std.
They differ only in how the crop offset is rounded:

* ``"floor"`` — transformers' CLIP image processor: ``(size − crop) // 2``;
* ``"round"`` — torchvision's ``CenterCrop``, which ImageBind uses:
  ``int(round((size − crop) / 2))`` (Python's round-half-to-even).

Torch-free so the ONNX conditioner can run where torch is not installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclass(frozen=True)
class PreprocessSpec:
    size: int = 224
    crop: int = 224
    mean: tuple[float, float, float] = field(default=CLIP_MEAN)
    std: tuple[float, float, float] = field(default=CLIP_STD)
    crop_rounding: str = "floor"
    resample: str = "bicubic"

    def __post_init__(self) -> None:
        if self.crop_rounding not in ("floor", "round"):
            raise ValueError(f"crop_rounding {self.crop_rounding!r}: must be 'floor' or 'round'")
        if self.resample not in _RESAMPLE:
            raise ValueError(f"resample {self.resample!r}: must be one of {sorted(_RESAMPLE)}")
        if self.crop > self.size:
            raise ValueError(f"crop {self.crop} is larger than the resize target {self.size}")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessSpec:
        return cls(**data)


#: transformers' CLIPImageProcessor defaults (openai/clip-vit-base-patch32).
CLIP_SPEC = PreprocessSpec(crop_rounding="floor")
#: imagebind.data.load_and_transform_vision_data (torchvision Resize/CenterCrop/Normalize).
IMAGEBIND_SPEC = PreprocessSpec(crop_rounding="round")


def as_rgb_array(image, index: int = 0) -> np.ndarray:
    """An (H, W, 3) uint8 array from an array or PIL image; anything else is refused by index."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        described = f"{getattr(image, 'shape', None)} {getattr(image, 'dtype', type(image).__name__)}"
        raise ValueError(f"image {index}: expected an RGB uint8 array of shape (H, W, 3), got {described}")
    return image


def preprocess(images: Sequence[np.ndarray], spec: PreprocessSpec) -> np.ndarray:
    """RGB uint8 images → float32 pixel batch (B, 3, crop, crop)."""
    if len(images) == 0:
        raise ValueError("no images to preprocess")
    mean = np.asarray(spec.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(spec.std, dtype=np.float32)[:, None, None]
    batch = []
    for i, image in enumerate(images):
        pil = Image.fromarray(as_rgb_array(image, i))
        pil = pil.resize(_shortest_side_size(*pil.size, spec.size), _RESAMPLE[spec.resample])
        width, height = pil.size
        top, left = _crop_offset(height, spec), _crop_offset(width, spec)
        pixels = np.asarray(pil.crop((left, top, left + spec.crop, top + spec.crop)), dtype=np.float32)
        batch.append((pixels.transpose(2, 0, 1) / np.float32(255.0) - mean) / std)
    return np.stack(batch).astype(np.float32, copy=False)


def _shortest_side_size(width: int, height: int, size: int) -> tuple[int, int]:
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    return (size, new_long) if width <= height else (new_long, size)


def _crop_offset(length: int, spec: PreprocessSpec) -> int:
    if spec.crop_rounding == "floor":
        return (length - spec.crop) // 2
    return int(round((length - spec.crop) / 2.0))


def spec_from_clip_processor(processor) -> PreprocessSpec:
    """The spec equivalent to a transformers CLIP image processor's settings."""
    size = processor.size
    shortest = size["shortest_edge"] if "shortest_edge" in size else min(size["height"], size["width"])
    names = {int(v): k for k, v in _RESAMPLE.items()}
    resample = names.get(int(processor.resample))
    if resample is None:
        raise ValueError(f"CLIP processor resample={processor.resample!r} is not supported")
    return PreprocessSpec(
        size=int(shortest),
        crop=int(processor.crop_size["height"]),
        mean=tuple(processor.image_mean),
        std=tuple(processor.image_std),
        crop_rounding="floor",
        resample=resample,
    )
