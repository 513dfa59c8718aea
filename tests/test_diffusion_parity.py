"""The engine's generation equals diffusers' own AudioLDM2Pipeline (a reference we did not write).

Same components (the tiny bundle's UNet, VAE, vocoder, scheduler, GPT-2), same stored
conditioning, same seeds and steps: the pipeline is called with ``prompt_embeds`` /
``generated_prompt_embeds`` / ``negative_*`` and attention masks, and it is given one CPU
generator per artwork. Its text encoders (tiny CLAP and FLAN-T5) are needed to construct it
but are not run.

Where the two differ, and why the tests are split:

* **The LoA (GPT-2).** ``generate_loa`` keeps GPT-2's key/value cache between its 8 steps.
  With transformers 5 the pipeline's ``generate_language_model`` no longer does: GPT-2 returns
  its cache as ``cache``, the pipeline looks for ``past_key_values``, finds none, and so feeds
  the whole growing sequence every step (6, 7, ... 13 positions for 6 prompt tokens). The
  maths is the same, the float32 rounding is not (≤ 1 ulp of the LoA's magnitude here, and
  through 5 guided DDIM steps that grew to 1.2e-5 on the latents, which is what broke the
  old single test's ``atol=1e-5``). So the LoA is compared in float64, where rounding is
  ~1e-16 and anything above 1e-12 is a real difference, and in float32 within a few ulp.
* **Everything after the LoA** (DDIM loop, guidance, VAE, vocoder, cutting to length) is run
  by both on the same LoA and must be **bit-identical**: no tolerance at all.

``test_a_semantic_difference_fails_the_comparison`` shows that the comparisons see a real
difference (a timestep off by one, another guidance scale).
"""

from __future__ import annotations

import copy
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import diffusion_helpers as helpers

from engine.engines.diffusion.bundle import load_bundle
from engine.engines.diffusion.conditioning import LOA_TOKENS, generate_loa
from engine.engines.diffusion.pipeline import Art2MusPipeline

pytestmark = pytest.mark.slow

IMAGES = [np.random.default_rng(i).integers(0, 256, (96, 64 + 16 * i, 3), dtype=np.uint8) for i in range(2)]
SEEDS = [11, 1234567]
FLOAT32_EPS = torch.finfo(torch.float32).eps
# float64 rounding through GPT-2 is ~1e-16 relative (measured 3e-16); a semantic difference is
# of the order of the values themselves.
FLOAT64_RELATIVE_BOUND = 1e-12
# The cached and uncached loops round differently in float32: measured 0.9 ulp of max|LoA|.
FLOAT32_ULPS = 4


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


def aligner_tokens(ours) -> torch.Tensor:
    with torch.no_grad():
        return ours.bundle.aligner(ours.image_embeddings(IMAGES))


def pipeline_loa(language_model, tokens: torch.Tensor) -> torch.Tensor:
    """diffusers' ``generate_language_model`` on a stand-in holding only the language model
    (the method uses nothing else of the pipeline), so it can run in any dtype."""
    from diffusers import AudioLDM2Pipeline

    holder = types.SimpleNamespace(language_model=language_model, device=torch.device("cpu"))
    with torch.no_grad():
        return AudioLDM2Pipeline.generate_language_model(holder, tokens, max_new_tokens=LOA_TOKENS)


def reference_call(ours, reference, loa, *, steps, duration, guidance):
    """The pipeline's audio and its final latents (from its step callback), given the LoA."""
    c = ours.bundle.conditioning
    n = len(IMAGES)
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
    reference.set_progress_bar_config(disable=True)
    audio = reference(**kwargs).audios
    assert len(seen) == steps
    return audio, seen[-1]


# ------------------------------------------------------------------ the LoA (GPT-2)


def test_loa_equals_the_pipelines_in_float64(ours, reference):
    lm64 = copy.deepcopy(reference.language_model).double()
    tokens = aligner_tokens(ours).double()
    expected = pipeline_loa(lm64, tokens)
    with torch.no_grad():
        loa = generate_loa(lm64, tokens, LOA_TOKENS)
    assert loa.dtype == torch.float64 and loa.shape == expected.shape == (len(IMAGES), LOA_TOKENS, 32)
    bound = FLOAT64_RELATIVE_BOUND * expected.abs().max().item()
    assert (loa - expected).abs().max().item() <= bound


def test_loa_in_float32_differs_by_at_most_a_few_ulp(ours, reference):
    expected = pipeline_loa(reference.language_model, aligner_tokens(ours))
    loa = ours.loa_embeddings(ours.image_embeddings(IMAGES))
    assert loa.dtype == torch.float32
    bound = FLOAT32_ULPS * FLOAT32_EPS * expected.abs().max().item()
    assert (loa - expected).abs().max().item() <= bound


# ------------------------------------------------------------------ diffusion and decoding


@pytest.mark.slow
@pytest.mark.parametrize(
    ("steps", "duration", "guidance"),
    [
        (5, 2.0, 3.5),  # the engine's guidance
        (3, 2.13, 3.5),  # a duration that is not a whole number of latent frames
        (3, 2.0, 1.0),  # no classifier-free guidance
    ],
)
def test_latents_and_audio_are_bit_identical_given_the_same_loa(ours, reference, steps, duration, guidance):
    loa = ours.loa_embeddings(ours.image_embeddings(IMAGES))
    ref_audio, ref_latents = reference_call(
        ours, reference, loa, steps=steps, duration=duration, guidance=guidance
    )
    assert np.abs(ref_audio).max() > 1e-3  # the tiny vocoder's output is real signal

    latents = ours.denoise(loa, SEEDS, steps=steps, guidance_scale=guidance, duration=duration)
    assert torch.equal(latents, ref_latents)
    audio = ours.decode(latents, duration)
    assert np.array_equal(audio, ref_audio)
    # AudioLDM 2 floors the duration to whole mel frames (2.13 s / 10 ms = 212.99... → 212),
    # so the audio may be up to a few frames short of the asked-for length; the engine
    # generates a margin on top for that reason.
    assert int(duration * 16000) - 4 * 160 <= audio.shape[1] <= int(duration * 16000)

    # The whole generate() path, images in, gives the same audio (one batch, as the pipeline).
    full = ours.generate(
        IMAGES, SEEDS, steps=steps, guidance_scale=guidance, duration=duration, batch_size=len(IMAGES)
    )
    assert np.array_equal(full, ref_audio)


def test_a_semantic_difference_fails_the_comparison(ours, reference):
    """What the exact comparison would report if the engine's sampling were wrong."""
    steps, duration, guidance = 3, 2.0, 3.5
    loa = ours.loa_embeddings(ours.image_embeddings(IMAGES))
    _, ref_latents = reference_call(ours, reference, loa, steps=steps, duration=duration, guidance=guidance)
    scale = ref_latents.abs().max().item()

    shifted = copy.copy(ours)  # every DDIM timestep one later than the pipeline's
    shifted.scheduler_config = {
        **ours.scheduler_config,
        "steps_offset": ours.scheduler_config["steps_offset"] + 1,
    }
    off_by_one = shifted.denoise(loa, SEEDS, steps=steps, guidance_scale=guidance, duration=duration)
    other_guidance = ours.denoise(loa, SEEDS, steps=steps, guidance_scale=guidance + 0.5, duration=duration)
    for wrong in (off_by_one, other_guidance):
        # Far beyond float rounding (~1e-7 relative): these are different samples.
        assert (wrong - ref_latents).abs().max().item() > 1e-4 * scale


def test_ten_second_latents_have_the_papers_shape(ours):
    layout = ours.layout(10.0)
    assert layout.latent_shape == (8, 250, 16)
    assert layout.samples == 160_000
