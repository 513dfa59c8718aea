"""Aligner tokens → GPT-2 → the 8 "Language of Audio" (LoA) embeddings AudioLDM 2 attends to.

AudioLDM 2 does not sample words from GPT-2: it runs GPT-2 greedily over *hidden states*.
Each step feeds the last position's final hidden state (after GPT-2's closing LayerNorm) back
in as the next input embedding, and after ``max_new_tokens`` steps the newly produced hidden
states are the conditioning. ``generate_loa`` is that loop, step for step what diffusers'
``AudioLDM2Pipeline.generate_language_model`` does, written here because:

* the pipeline's loop runs under the pipeline's ``torch.no_grad`` and leans on
  ``GenerationMixin`` internals, so training cannot push gradients through it into the
  Image Aligner — this one has no ``no_grad`` and plain autograd-friendly ops;
* AudioLDM 2 snapshots store the language model as ``GPT2Model`` (no LM head; the head is
  never used), and with transformers 5 the pipeline's loop only works on ``GPT2LMHeadModel``
  (``GPT2Model`` has no ``_update_model_kwargs_for_generation``). This loop takes either.

It keeps GPT-2's key/value cache between steps, so each step costs one position, not the
whole sequence. (With transformers 5 the pipeline's own loop no longer does: GPT-2 returns its
cache as ``cache``, the pipeline looks for ``past_key_values`` and so recomputes the whole
sequence each step. The maths is the same, the float rounding is not:
tests/test_diffusion_parity.py compares the two in float64 and in float32.)
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import DynamicCache

#: AudioLDM 2's LoA length (``max_new_tokens`` in the pipeline, 8 for every released checkpoint).
LOA_TOKENS = 8


def base_transformer(language_model: nn.Module) -> nn.Module:
    """The GPT-2 transformer without a head: ``GPT2Model`` itself, or ``GPT2LMHeadModel.transformer``."""
    base = getattr(language_model, "base_model", language_model)
    if not hasattr(base, "wpe") or not hasattr(base, "h"):
        raise TypeError(
            f"generate_loa needs a GPT-2 model (GPT2Model or GPT2LMHeadModel), got {type(language_model).__name__}"
        )
    return base


def generate_loa(
    language_model: nn.Module,
    inputs_embeds: torch.Tensor,
    max_new_tokens: int = LOA_TOKENS,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Greedy hidden-state generation: (B, N, d) prompt embeddings → (B, max_new_tokens, d).

    ``attention_mask`` (B, N), optional, marks padded prompt positions with 0 as in the
    pipeline; every generated position is attended to. Differentiable end to end.
    """
    if inputs_embeds.ndim != 3:
        raise ValueError(
            f"inputs_embeds must have shape (batch, tokens, width), got {tuple(inputs_embeds.shape)}"
        )
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    gpt2 = base_transformer(language_model)
    width = gpt2.config.n_embd
    if inputs_embeds.shape[-1] != width:
        raise ValueError(
            f"inputs_embeds width {inputs_embeds.shape[-1]} does not match GPT-2's n_embd {width}"
        )
    total = inputs_embeds.shape[1] + max_new_tokens - 1
    if total > gpt2.config.n_positions:
        raise ValueError(
            f"{inputs_embeds.shape[1]} prompt tokens + {max_new_tokens} new ones exceed GPT-2's "
            f"{gpt2.config.n_positions} positions"
        )

    # Aligner tokens may come in fp32 to a half-precision GPT-2; the cast is differentiable.
    step_input = inputs_embeds.to(dtype=gpt2.dtype)
    generated = []
    # GPT-2 appends each step's keys and values to this cache in place (transformers >= 5.24
    # names the argument `cache`; `past_key_values` is deprecated and goes in 5.40).
    cache = DynamicCache(config=gpt2.config)
    for _ in range(max_new_tokens):
        out = gpt2(
            inputs_embeds=step_input,
            attention_mask=attention_mask,
            cache=cache,
            use_cache=True,
            return_dict=True,
        )
        # last_hidden_state is taken after ln_f, the same tensor as the pipeline's hidden_states[-1].
        next_embed = out.last_hidden_state[:, -1:, :]
        generated.append(next_embed)
        step_input = next_embed
        if attention_mask is not None:
            attention_mask = torch.cat(
                [attention_mask, attention_mask.new_ones((attention_mask.shape[0], 1))], dim=1
            )
    return torch.cat(generated, dim=1)
