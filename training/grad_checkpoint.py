"""Gradient checkpointing of the frozen UNet, done here rather than by diffusers.

diffusers' ``enable_gradient_checkpointing()`` on ``AudioLDM2UNet2DConditionModel`` calls
``Transformer2DModel.forward`` with positional arguments in the wrong order (the T5 mask lands
in the self-attention mask slot), which crashes or silently mis-masks. This wraps each
transformer and resnet block's ``forward`` in ``torch.utils.checkpoint(...,
use_reentrant=False)`` and passes keyword arguments through unchanged. The non-reentrant
variant is needed because the UNet's parameters are frozen: the reentrant one only
back-propagates when some *input* requires grad, and it drops keyword arguments.
"""

from __future__ import annotations

import functools

from torch import nn


def enable_checkpointing(unet: nn.Module) -> int:
    """Wrap every ``Transformer2DModel`` and ``ResnetBlock2D`` of ``unet``; returns how many."""
    from diffusers.models.resnet import ResnetBlock2D
    from diffusers.models.transformers.transformer_2d import Transformer2DModel
    from torch.utils.checkpoint import checkpoint

    count = 0
    for module in unet.modules():
        if isinstance(module, Transformer2DModel | ResnetBlock2D) and not getattr(module, "_a2m_ckpt", False):
            inner = module.forward

            @functools.wraps(inner)
            def wrapped(*args, _inner=inner, **kwargs):
                return checkpoint(_inner, *args, use_reentrant=False, **kwargs)

            module.forward = wrapped  # type: ignore[method-assign]
            module._a2m_ckpt = True
            count += 1
    return count
