"""The GPT-2 LoA loop equals diffusers' own and lets gradients reach the aligner."""

from __future__ import annotations

import types

import pytest

torch = pytest.importorskip("torch")

from diffusers import AudioLDM2Pipeline
from transformers import GPT2Config, GPT2LMHeadModel, GPT2Model

from engine.engines.diffusion.aligner import ImageAligner
from engine.engines.diffusion.conditioning import generate_loa

WIDTH = 32


def tiny_gpt2_pair() -> tuple[GPT2LMHeadModel, GPT2Model]:
    """A tiny random GPT-2 as GPT2LMHeadModel and the same weights as GPT2Model."""
    torch.manual_seed(0)
    config = GPT2Config(
        n_embd=WIDTH, n_layer=2, n_head=4, n_positions=64, vocab_size=64, bos_token_id=0, eos_token_id=0
    )
    lm = GPT2LMHeadModel(config).eval()
    base = GPT2Model(config).eval()
    base.load_state_dict(lm.transformer.state_dict())
    return lm, base


def pipeline_reference(lm: GPT2LMHeadModel, inputs_embeds, **kwargs):
    """diffusers' AudioLDM2Pipeline.generate_language_model, called on a pipeline stand-in
    that holds only the language model (the method uses nothing else of the pipeline)."""
    holder = types.SimpleNamespace(language_model=lm, device=torch.device("cpu"))
    with torch.no_grad():
        return AudioLDM2Pipeline.generate_language_model(holder, inputs_embeds, **kwargs)


@pytest.mark.parametrize("which", ["lm_head", "base"])
def test_equals_pipeline_generate_language_model(which):
    lm, base = tiny_gpt2_pair()
    x = torch.randn(3, 6, WIDTH)
    reference = pipeline_reference(lm, x, max_new_tokens=8)
    with torch.no_grad():
        ours = generate_loa(lm if which == "lm_head" else base, x, max_new_tokens=8)
    assert ours.shape == (3, 8, WIDTH)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)


def test_equals_pipeline_with_padding_mask():
    lm, base = tiny_gpt2_pair()
    x = torch.randn(2, 5, WIDTH)
    mask = torch.ones(2, 5, dtype=torch.long)
    mask[1, :2] = 0
    reference = pipeline_reference(lm, x, attention_mask=mask, max_new_tokens=4)
    with torch.no_grad():
        ours = generate_loa(base, x, max_new_tokens=4, attention_mask=mask)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    # The mask matters: without it the padded row comes out different.
    with torch.no_grad():
        unmasked = generate_loa(base, x, max_new_tokens=4)
    assert not torch.allclose(unmasked[1], ours[1])


def test_generated_tokens_feed_back():
    """Each new position depends on the ones before (a loop, not 8 copies of one step)."""
    _, base = tiny_gpt2_pair()
    with torch.no_grad():
        out = generate_loa(base, torch.randn(1, 4, WIDTH), max_new_tokens=8)
    assert not torch.allclose(out[0, 0], out[0, 1])
    with torch.no_grad():
        first_three = generate_loa(base, torch.randn(1, 4, WIDTH), max_new_tokens=3)
    assert first_three.shape == (1, 3, WIDTH)


def test_gradients_reach_the_aligner_through_frozen_gpt2():
    _, base = tiny_gpt2_pair()
    base.requires_grad_(False)
    aligner = ImageAligner(input_dim=16, embed_dim=24, num_tokens=4, token_dim=WIDTH)
    loa = generate_loa(base, aligner(torch.randn(2, 16)))
    loa.pow(2).mean().backward()
    for name, param in aligner.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in base.parameters())


def test_width_mismatch_and_overlong_prompt_are_refused():
    _, base = tiny_gpt2_pair()
    with pytest.raises(ValueError, match="n_embd 32"):
        generate_loa(base, torch.randn(1, 4, 768))
    with pytest.raises(ValueError, match="64 positions"):
        generate_loa(base, torch.randn(1, 60, WIDTH), max_new_tokens=8)
    with pytest.raises(TypeError, match="GPT-2"):
        generate_loa(torch.nn.Linear(2, 2), torch.randn(1, 4, WIDTH))


def test_tokens_are_cast_to_the_language_models_dtype():
    _, base = tiny_gpt2_pair()
    base = base.to(torch.bfloat16)
    out = generate_loa(base, torch.randn(1, 3, WIDTH))
    assert out.dtype == torch.bfloat16 and out.shape == (1, 8, WIDTH)


def test_uses_gpt2s_current_cache_argument():
    """transformers 5.24 renamed GPT-2's `past_key_values` to `cache` (the old name goes in
    5.40): generate_loa uses the new one, so it raises no deprecation warning."""
    import warnings

    _, base = tiny_gpt2_pair()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with torch.no_grad():
            out = generate_loa(base, torch.randn(1, 4, WIDTH), max_new_tokens=3)
    assert out.shape == (1, 3, WIDTH)
