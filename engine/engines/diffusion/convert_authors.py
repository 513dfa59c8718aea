"""The authors' published Art2Mus weights → an :class:`ImageAligner` folder.

The authors (GitHub justivanr/art2mus_, 2024) publish only their ``ImageProjectionLayer``, as
``torch.save(layer.state_dict(), path)``: ``art2mus_img_proj_layer.pt`` ("Art2Mus", 1 token)
and ``art2mus_4_img_proj_layer.pt`` ("Art2Mus-4", 4 tokens). Their layer is
Linear(1024 → 1536) → Tanh → Linear(1536 → k·768) with the parameters

    projection1.weight (1536, 1024)   projection1.bias (1536,)
    projection2.weight (k·768, 1536)  projection2.bias (k·768,)

(``act1`` has none). The state dict is copied unchanged into a ``tanh-mlp`` aligner, whose
parameters have the same names, and saved as a diffusers folder (config.json + safetensors)
that ``models build --aligner`` takes. The widths are read from the file, so a retrained
layer with another hidden width converts too; ``tokens`` and ``token_dim`` must split the
second layer's output exactly.

Their training script saves the layer after ``accelerator.prepare`` without unwrapping it, so
a layer trained on several GPUs has every key prefixed ``module.`` (DDP); such a file, and a
``torch.compile``'d one (``_orig_mod.``), is accepted too.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from engine.atomic_writes import is_taken, written_in_place

from .aligner import AlignerArchitecture, ConditioningRecipe, ImageAligner
from .checkpoints import CheckpointError

#: The parameters of the authors' ImageProjectionLayer.
AUTHORS_KEYS = ("projection1.weight", "projection1.bias", "projection2.weight", "projection2.bias")
#: Prefixes a wrapped module adds to every key (DDP, torch.compile).
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: GPT-2's width in AudioLDM 2 (cvssp/audioldm2): the authors' gpt_model_dim.
GPT2_WIDTH = 768


def read_authors_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's four tensors, refusing anything that is not the authors' layer."""
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        # weights_only: a state dict is plain tensors, and a .pt from elsewhere must not run code.
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors alike: name the file
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint: {exc}") from None
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{path}: holds a {type(data).__name__}, not a state dict; "
            "expected torch.save(ImageProjectionLayer().state_dict())"
        )
    state = {_unwrap(str(key)): value for key, value in data.items()}
    missing = [k for k in AUTHORS_KEYS if k not in state]
    unexpected = sorted(k for k in state if k not in AUTHORS_KEYS)
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: not the authors' ImageProjectionLayer state dict: "
            f"missing {missing or 'nothing'}, unexpected {unexpected or 'nothing'}"
        )
    for key in AUTHORS_KEYS:
        tensor = state[key]
        if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
            raise CheckpointError(f"{path}: '{key}' is not a floating-point tensor")
        if not torch.isfinite(tensor).all():
            raise CheckpointError(f"{path}: '{key}' holds NaN or infinite values (a diverged or corrupt run)")
    return {key: state[key] for key in AUTHORS_KEYS}


def _unwrap(key: str) -> str:
    for prefix in WRAPPER_PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix) :]
    return key


def aligner_config(path: Path, state: dict[str, torch.Tensor], tokens: int, token_dim: int) -> dict:
    """The ``tanh-mlp`` aligner config the tensors' shapes imply; mismatches name the tensor."""
    if tokens < 1 or token_dim < 1:
        raise CheckpointError(f"--tokens {tokens} and token width {token_dim} must be positive")
    w1, b1, w2, b2 = (state[k] for k in AUTHORS_KEYS)
    if w1.ndim != 2 or w2.ndim != 2 or b1.shape != (w1.shape[0],) or b2.shape != (w2.shape[0],):
        raise CheckpointError(
            f"{path}: tensor shapes {[tuple(t.shape) for t in (w1, b1, w2, b2)]} are not two Linear layers"
        )
    hidden, input_dim = w1.shape
    outputs, hidden_2 = w2.shape
    if hidden_2 != hidden:
        raise CheckpointError(
            f"{path}: projection2.weight takes {hidden_2} inputs but projection1 gives {hidden}"
        )
    if outputs != tokens * token_dim:
        fits = f" (it fits --tokens {outputs // token_dim})" if outputs % token_dim == 0 else ""
        raise CheckpointError(
            f"{path}: projection2.weight has {outputs} outputs, not --tokens {tokens} × {token_dim}{fits}"
        )
    return {
        "input_dim": int(input_dim),
        "embed_dim": int(hidden),
        "num_tokens": int(tokens),
        "token_dim": int(token_dim),
        "architecture": AlignerArchitecture.TANH_MLP.value,
        "conditioning": ConditioningRecipe.ART2MUS_2024.value,
    }


def convert_authors_checkpoint(
    checkpoint: str | os.PathLike, out: str | os.PathLike, *, tokens: int, token_dim: int = GPT2_WIDTH
) -> ImageAligner:
    """Write ``out`` (a new folder) from the authors' ``.pt``; returns the converted aligner.

    The values are kept exactly (half-precision files are widened to fp32, which is exact);
    the folder is written beside ``out`` and renamed into place, so a failed conversion
    leaves nothing behind. The checkpoint is only read.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    state = read_authors_state_dict(checkpoint)
    config = aligner_config(checkpoint, state, tokens, token_dim)
    if is_taken(out):
        raise CheckpointError(f"{out}: already exists and is not empty; choose a new folder")
    aligner = ImageAligner(**config)
    aligner.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    with written_in_place(out) as work:
        aligner.save_pretrained(work, safe_serialization=True)
    return aligner.eval()
