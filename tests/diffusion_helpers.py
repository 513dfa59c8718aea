"""Helpers for the diffusion tests.

Stand-in for engine/engines/diffusion/encoders.py while the diffusion-model branch writes it.

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


# --------------------------------------------------------------------------- tiny bundles

_BUNDLES: dict[str, Path] = {}
_ROOT: list[Path] = []


def tiny_bundle(kind: str = "clip") -> Path:
    """A tiny random bundle, made once per test process (read-only: copy it to change it)."""
    import atexit
    import shutil
    import tempfile

    install()
    from engine.engines.diffusion.bundle import make_tiny_bundle

    if kind not in _BUNDLES:
        if not _ROOT:
            _ROOT.append(Path(tempfile.mkdtemp(prefix="art2mus-test-bundles-")))
            atexit.register(shutil.rmtree, _ROOT[0], True)
        folder = _ROOT[0] / f"tiny-{kind}"
        make_tiny_bundle(folder, encoder_kind=kind)
        _BUNDLES[kind] = folder
    return _BUNDLES[kind]


def copy_bundle(tmp_path: Path, kind: str = "clip") -> Path:
    import shutil

    dest = tmp_path / "bundle"
    shutil.copytree(tiny_bundle(kind), dest)
    return dest


def rehash(folder: Path, rel: str) -> None:
    """Record a file's new sha256 in the manifest (to test checks beyond the hashes)."""
    from engine.engines.diffusion.bundle import MANIFEST, sha256_file

    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["files"][rel] = sha256_file(folder / rel)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
