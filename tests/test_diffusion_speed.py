"""The engine's speed work changes no sample: the cross-attention K/V cache, the host-side
timesteps, and the optional DPM-Solver++ / UniPC samplers (equal to diffusers' own pipeline
running the same scheduler)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import diffusion_helpers as helpers

from engine.config import ConfigError, load_config
from engine.engines.diffusion.bundle import load_bundle
from engine.engines.diffusion.pipeline import Art2MusPipeline
from engine.engines.diffusion.samplers import Sampler, make_scheduler

SEEDS = [3, 99]
STEPS, DURATION, GUIDANCE = 5, 2.0, 3.5


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(helpers.tiny_bundle())


@pytest.fixture(scope="module")
def loa(bundle):
    return torch.randn(
        len(SEEDS), 8, bundle.language_model.config.n_embd, generator=torch.Generator().manual_seed(5)
    )


def _denoise(pipeline, loa, steps=STEPS):
    return pipeline.denoise(loa, SEEDS, steps=steps, guidance_scale=GUIDANCE, duration=DURATION)


def test_kv_cache_projects_each_constant_stream_once_and_changes_no_bit(bundle, loa):
    cached = Art2MusPipeline(bundle, kv_cache=True)
    cache = cached.kv_cache
    assert cache is not None and cache.layers > 0
    latents = _denoise(cached, loa)
    # One to_k and one to_v per cross-attention layer for the whole generation, not per step.
    assert cache.projections_run == 2 * cache.layers
    uncached = Art2MusPipeline(bundle, kv_cache=False)
    assert torch.equal(latents, _denoise(uncached, loa))
    # The cache is per generation: another LoA is projected afresh, not served stale.
    other = _denoise(cached, loa.flip(0))
    assert cache.projections_run == 4 * cache.layers
    assert not torch.equal(other, latents)


def test_scheduler_tables_are_indexed_with_host_ints(bundle, loa, monkeypatch):
    """The loop hands the scheduler Python ints (no device tensor to read back per step)."""
    from diffusers import DDIMScheduler

    seen = []
    step = DDIMScheduler.step

    def spy(self, model_output, timestep, sample, *args, **kwargs):
        seen.append(type(timestep))
        return step(self, model_output, timestep, sample, *args, **kwargs)

    monkeypatch.setattr(DDIMScheduler, "step", spy)
    _denoise(Art2MusPipeline(bundle), loa)
    assert seen == [int] * STEPS


@pytest.fixture(scope="module")
def reference(bundle):
    from diffusers import AudioLDM2Pipeline
    from transformers import GPT2LMHeadModel

    from engine.engines.diffusion.tiny_audioldm2 import make_tiny_pipeline

    text = make_tiny_pipeline(seed=99)  # only to construct the pipeline; never run
    pipe = AudioLDM2Pipeline(
        vae=bundle.vae,
        text_encoder=text.text_encoder,
        text_encoder_2=text.text_encoder_2,
        projection_model=text.projection_model,
        language_model=GPT2LMHeadModel.from_pretrained(bundle.path / "language_model").eval(),
        tokenizer=text.tokenizer,
        tokenizer_2=text.tokenizer_2,
        feature_extractor=text.feature_extractor,
        unet=bundle.unet,
        scheduler=make_scheduler(Sampler.DDIM, bundle.scheduler_config),
        vocoder=bundle.vocoder,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.slow
@pytest.mark.parametrize("sampler", [Sampler.DPM_SOLVER, Sampler.UNIPC])
def test_faster_samplers_equal_diffusers_pipeline_with_that_scheduler(bundle, loa, reference, sampler):
    from diffusers import DPMSolverMultistepScheduler, UniPCMultistepScheduler

    expected_class = {Sampler.DPM_SOLVER: DPMSolverMultistepScheduler, Sampler.UNIPC: UniPCMultistepScheduler}
    reference.scheduler = expected_class[sampler].from_config(bundle.scheduler_config)
    c = bundle.conditioning
    n = len(SEEDS)
    seen = []
    reference(
        prompt_embeds=c["prompt_embeds"].expand(n, -1, -1),
        attention_mask=c["attention_mask"].expand(n, -1),
        generated_prompt_embeds=loa,
        negative_prompt_embeds=c["negative_prompt_embeds"].expand(n, -1, -1),
        negative_attention_mask=c["negative_attention_mask"].expand(n, -1),
        negative_generated_prompt_embeds=c["negative_generated_prompt_embeds"].expand(n, -1, -1),
        num_inference_steps=STEPS,
        guidance_scale=GUIDANCE,
        audio_length_in_s=DURATION,
        generator=[torch.Generator("cpu").manual_seed(s) for s in SEEDS],
        output_type="latent",
        callback=lambda step, t, latents: seen.append(latents.clone()),
    )
    ours = _denoise(Art2MusPipeline(bundle, sampler=sampler), loa)
    assert torch.equal(ours, seen[-1])
    ddim = _denoise(Art2MusPipeline(bundle), loa)
    assert (ours - ddim).abs().max() > 1e-4 * ddim.abs().max()  # a different solver, not DDIM again


def test_sampler_config_key_is_validated_and_reaches_the_clip_key(tmp_path):
    from engine.engines.diffusion.engine import create_art2mus_engine

    bad = tmp_path / "bad.toml"
    bad.write_text('[diffusion]\nsampler = "euler"\n')
    with pytest.raises(ConfigError, match=r"diffusion\.sampler"):
        load_config(bad)
    good = tmp_path / "good.toml"
    good.write_text(
        f'[engine]\nname = "art2mus"\nmodel = "{helpers.tiny_bundle()}"\nsteps = 3\n'
        '[diffusion]\ndevice = "cpu"\nsampler = "unipc"\n'
    )
    engine = create_art2mus_engine(load_config(good))
    assert engine.pipeline.sampler is Sampler.UNIPC
    assert engine.params()["sampler"] == "unipc"
    default = tmp_path / "default.toml"
    default.write_text(
        f'[engine]\nname = "art2mus"\nmodel = "{helpers.tiny_bundle()}"\n[diffusion]\ndevice = "cpu"\n'
    )
    # DDIM (the default) leaves the clip key as it was before the option, so old clips are reused.
    plain = create_art2mus_engine(load_config(default))
    assert "sampler" not in plain.params()
    # batch_size 0 (the default) is sized from free GPU memory; a CPU has none to measure: 4.
    assert load_config(default).engine.batch_size == 0 and plain.batch_size == 4
    clip = engine.generate(np.zeros((64, 64, 3), np.uint8), 5.0, seed=1)
    assert np.isfinite(clip.audio).all() and np.abs(clip.audio).max() > 0


@pytest.mark.gpu
def test_no_host_sync_inside_the_denoising_loop_on_cuda(loa):
    """From the first UNet call to the end of sampling nothing waits for the GPU (the noise
    and the timesteps are copied to it before the loop)."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pipeline = Art2MusPipeline(load_bundle(helpers.tiny_bundle(), device="cuda"), "cuda")
    loa = loa.cuda()
    _denoise(pipeline, loa, steps=2)  # warm-up: cuDNN and the allocator may sync the first time
    calls = []

    def arm(*_):
        calls.append(1)
        torch.cuda.set_sync_debug_mode("error")

    hook = pipeline.unet.register_forward_pre_hook(arm)
    try:
        _denoise(pipeline, loa, steps=3)
    finally:
        torch.cuda.set_sync_debug_mode("default")
        hook.remove()
    assert len(calls) == 3
    torch.cuda.set_sync_debug_mode("error")
    try:
        with pytest.raises(RuntimeError, match="synchroniz"):
            torch.zeros(1, device="cuda").item()  # the mode does see a sync
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_cuda_graphs_switch_stays_off_on_the_cpu(tmp_path):
    from engine.engines.diffusion.engine import create_art2mus_engine

    path = tmp_path / "graphs.toml"
    path.write_text(
        f'[engine]\nname = "art2mus"\nmodel = "{helpers.tiny_bundle()}"\n[diffusion]\ndevice = "cpu"\ncuda_graphs = true\n'
    )
    engine = create_art2mus_engine(load_config(path))
    assert engine.pipeline.unet is engine.bundle.unet  # eager, not GraphedUNet
    assert engine.pipeline.kv_cache is not None


@pytest.mark.gpu
def test_cuda_graph_replays_give_the_eager_latents(loa):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from engine.engines.diffusion.cuda_graphs import GraphedUNet

    bundle = load_bundle(helpers.tiny_bundle(), device="cuda")
    eager = _denoise(Art2MusPipeline(bundle, "cuda", kv_cache=False), loa.cuda())
    graphed = Art2MusPipeline(bundle, "cuda", kv_cache=False)
    graphed.unet = GraphedUNet(bundle.unet)
    first = _denoise(graphed, loa.cuda())
    again = _denoise(graphed, loa.flip(0).cuda())
    assert len(graphed.unet.captures) == 1  # one capture per shape, reused by every step and call
    torch.testing.assert_close(first, eager, rtol=1e-5, atol=1e-5 * eager.abs().max().item())
    assert not torch.equal(again, first)


@pytest.mark.gpu
def test_auto_batch_size_fits_the_free_gpu_memory():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pipeline = Art2MusPipeline(load_bundle(helpers.tiny_bundle(), device="cuda"), "cuda")
    size = pipeline.auto_batch_size(11.6)
    assert 1 <= size <= Art2MusPipeline.MAX_AUTO_BATCH
    loa = torch.zeros(size, 8, pipeline.negative_loa.shape[-1], device="cuda")
    waves = pipeline.generate_from_loa(
        loa, list(range(size)), steps=2, guidance_scale=3.5, duration=11.6, batch_size=size
    )
    assert waves.shape[0] == size and pipeline.max_batch is None  # no out-of-memory halving
