"""Stand-in for engine/engines/diffusion/encoders.py while the diffusion-model branch writes it.

Installed only when the real module cannot be imported; it follows the APIS.md contract
(VisionEncoder .kind/.dim/.preprocess/.embed, load_vision_encoder, make_tiny_encoder).
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path


def install() -> None:
    try:
        importlib.import_module("engine.engines.diffusion.encoders")
        return
    except ImportError:
        pass
    import numpy as np
    import torch
    from safetensors.torch import load_file, save_file

    class VisionEncoder:
        def __init__(self, kind: str, dim: int, weight: torch.Tensor):
            self.kind, self.dim, self.weight = kind, dim, weight

        def preprocess(self, images):
            import cv2

            rows = [cv2.resize(np.asarray(im), (8, 8), interpolation=cv2.INTER_AREA) for im in images]
            return torch.from_numpy(np.stack(rows).astype(np.float32) / 255.0).flatten(1)

        def embed(self, pixel_values):
            return pixel_values @ self.weight.T

    def make_tiny_encoder(kind: str, folder) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        dim = 512 if kind == "clip" else 1024
        g = torch.Generator().manual_seed(7)
        save_file({"weight": torch.randn(dim, 192, generator=g) * 0.1}, str(folder / "model.safetensors"))
        (folder / "config.json").write_text(json.dumps({"kind": kind, "dim": dim}))
        return folder

    def load_vision_encoder(folder) -> VisionEncoder:
        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        return VisionEncoder(config["kind"], config["dim"], load_file(str(folder / "model.safetensors"))["weight"])

    module = types.ModuleType("engine.engines.diffusion.encoders")
    module.VisionEncoder = VisionEncoder
    module.make_tiny_encoder = make_tiny_encoder
    module.load_vision_encoder = load_vision_encoder
    sys.modules[module.__name__] = module
    import engine.engines.diffusion as package

    package.encoders = module
