"""Keys and values of the constant cross-attention streams, computed once per generation.

Every UNet call of a generation attends to the same two conditioning streams (the LoA
embeddings and the stored FLAN-T5 prompt, negative branch included), yet diffusers' attention
projects them through each cross-attention layer's ``to_k`` and ``to_v`` again at every step:
2 × layers × steps matrix products whose result never changes. :class:`CrossAttentionKVCache`
remembers those projections for as long as :meth:`holding` is open and hands back the stored
tensor for the same stream, so the sampled latents are bit-identical to the uncached path
(tests/test_diffusion_speed.py).

How: each cross-attention layer's ``to_k``/``to_v`` gets an instance-level ``forward`` that
recognises the held stream tensors by identity (``is``, not by address, which the caching
allocator reuses). Anything else — self-attention, another tensor — runs the plain Linear.
The module tree and state dict are unchanged. Not for a compiled or graph-captured UNet,
whose traced code would bake the cache in; the engine turns it off there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn


class CrossAttentionKVCache:
    """Installs itself on ``unet``'s cross-attention key/value projections."""

    def __init__(self, unet: nn.Module):
        from diffusers.models.attention_processor import Attention

        self._held: tuple[torch.Tensor, ...] = ()
        self._memo: dict[tuple[int, int], torch.Tensor] = {}
        self.projections_run = 0  # to_k/to_v runs on held streams (tests count them)
        self.layers = 0
        for module in unet.modules():
            if isinstance(module, Attention) and module.is_cross_attention:
                for linear in (module.to_k, module.to_v):
                    linear.forward = self._cached(linear)  # type: ignore[method-assign, assignment]
                self.layers += 1

    def _cached(self, linear: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
        plain = type(linear).forward.__get__(linear)

        def forward(x: torch.Tensor) -> torch.Tensor:
            if not any(x is held for held in self._held):
                return plain(x)
            key = (id(linear), id(x))
            out = self._memo.get(key)
            if out is None:
                out = self._memo[key] = plain(x)
                self.projections_run += 1
            return out

        return forward

    @contextmanager
    def holding(self, *streams: torch.Tensor) -> Iterator[None]:
        """Cache projections of ``streams`` (kept alive by the caller) until the block ends."""
        self._held = streams
        try:
            yield
        finally:
            self._held = ()
            self._memo.clear()
