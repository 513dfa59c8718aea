"""The engine's generation equals diffusers' own AudioLDM2Pipeline (a reference we did not write).

Same components (the tiny bundle's UNet, VAE, vocoder, scheduler, GPT-2), same stored
conditioning, same seeds and steps: the pipeline is called with ``prompt_embeds`` /
``generated_prompt_embeds`` / ``negative_*`` and attention masks, its LoA embeddings come from
its own ``generate_language_model`` on the aligner's tokens, and it is given one CPU
generator per artwork. Its text encoders (tiny CLAP and FLAN-T5) are needed to construct it
but are not run.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import diffusion_helpers as helpers

from engine.engines.diffusion.bundle import load_bundle
from engine.engines.diffusion.pipeline import Art2MusPipeline

IMAGES = [np.random.default_rng(i).integers(0, 256, (96, 64 + 16 * i, 3), dtype=np.uint8) for i in range(2)]
SEEDS = [11, 1234567]


@pytest.fixture(scope="module")
def ours():
    return Art2MusPipeline(load_bundle(helpers.tiny_bundle()))


@pytest.fixture(scope="module")
def reference(ours):
    from diffusers import AudioLDM2Pipeline, DDIMScheduler
    from transformers import GPT2LMHeadModel

    from engine.engines.diffusion.tiny_audioldm2 import make_tiny_pipeline

    bundle = ours.bundle
    text = make_tiny_pipeline(seed=99)  # only to construct the pipeline; never run
    return AudioLDM2Pipeline(
        vae=bundle.vae,
        text_encoder=text.text_encoder,
        text_encoder_2=text.text_encoder_2,
        projection_model=text.projection_model,
        language_model=GPT2LMHeadModel.from_pretrained(bundle.path / "language_model").eval(),
        tokenizer=text.tokenizer,
        tokenizer_2=text.tokenizer_2,
        feature_extractor=text.feature_extractor,
        unet=bundle.unet,
        scheduler=DDIMScheduler.from_pretrained(bundle.path / "scheduler"),
        vocoder=bundle.vocoder,
    )


def reference_call(ours, reference, *, steps, duration, guidance):
    """The pipeline's audio, its final latents (from its step callback) and its LoA embeddings."""
    c = ours.bundle.conditioning
    n = len(IMAGES)
    with torch.no_grad():
        tokens = ours.bundle.aligner(ours.image_embeddings(IMAGES))
        loa = reference.generate_language_model(tokens, max_new_tokens=8)
    kwargs = dict(
        prompt_embeds=c["prompt_embeds"].expand(n, -1, -1),
        attention_mask=c["attention_mask"].expand(n, -1),
        generated_prompt_embeds=loa,
        num_inference_steps=steps,
        guidance_scale=guidance,
        audio_length_in_s=duration,
        generator=[torch.Generator("cpu").manual_seed(s) for s in SEEDS],
        output_type="np",
        callback=lambda step, t, latents: seen.append(latents.clone()),
    )
    seen = []
    if guidance > 1:
        kwargs.update(
            negative_prompt_embeds=c["negative_prompt_embeds"].expand(n, -1, -1),
            negative_attention_mask=c["negative_attention_mask"].expand(n, -1),
            negative_generated_prompt_embeds=c["negative_generated_prompt_embeds"].expand(n, -1, -1),
        )
    audio = reference(**kwargs).audios
    assert len(seen) == steps
    return audio, seen[-1], loa


@pytest.mark.slow
@pytest.mark.parametrize(
    "steps, duration, guidance",
    [
        (5, 2.0, 3.5),  # the engine's guidance
        (3, 2.13, 3.5),  # a duration that is not a whole number of latent frames
        (3, 2.0, 1.0),  # no classifier-free guidance
    ],
)
def test_latents_and_audio_equal_audioldm2_pipeline(ours, reference, steps, duration, guidance):
    ref_audio, ref_latents, ref_loa = reference_call(
        ours, reference, steps=steps, duration=duration, guidance=guidance
    )

    loa = ours.loa_embeddings(ours.image_embeddings(IMAGES))
    torch.testing.assert_close(loa, ref_loa, rtol=1e-5, atol=1e-6)
    latents = ours.denoise(loa, SEEDS, steps=steps, guidance_scale=guidance, duration=duration)
    assert latents.shape == ref_latents.shape
    torch.testing.assert_close(latents, ref_latents, rtol=1e-5, atol=1e-5)

    audio = ours.decode(latents, duration)
    assert audio.shape == ref_audio.shape
    # AudioLDM 2 floors the duration to whole mel frames (2.13 s / 10 ms = 212.99... → 212),
    # so the audio may be up to a few frames short of the asked-for length; the engine
    # generates a margin on top for that reason.
    assert int(duration * 16000) - 4 * 160 <= audio.shape[1] <= int(duration * 16000)
    assert np.abs(ref_audio).max() > 1e-3  # the tiny vocoder's output is real signal
    np.testing.assert_allclose(audio, ref_audio, rtol=1e-4, atol=1e-5)

    # The whole generate() path (batching included) gives the same audio.
    full = ours.generate(IMAGES, SEEDS, steps=steps, guidance_scale=guidance, duration=duration, batch_size=1)
    np.testing.assert_allclose(full, ref_audio, rtol=1e-4, atol=1e-5)


def test_ten_second_latents_have_the_papers_shape(ours):
    layout = ours.layout(10.0)
    assert layout.latent_shape == (8, 250, 16)
    assert layout.samples == 160_000
