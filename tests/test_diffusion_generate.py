"""Generation with the tiny bundle on the CPU: clips, seeds, batches, OOM, candidates, finishing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import diffusion_helpers as helpers

from engine import audio_utils
from engine.engines.base import Engine, GenerationError
from engine.engines.diffusion.engine import Art2MusEngine, create_art2mus_engine

DEMO = Path(__file__).resolve().parent.parent / "content" / "demo"
STEPS = 3


def painting(name: str) -> np.ndarray:
    from PIL import Image

    with Image.open(DEMO / f"{name}.png") as im:
        return np.asarray(im.convert("RGB"))


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return [painting(n) for n in ("the-night-cafe", "church-at-auvers", "langlois-bridge-at-arles")]


@pytest.fixture(scope="module")
def engine() -> Art2MusEngine:
    return Art2MusEngine(helpers.tiny_bundle(), steps=STEPS, batch_size=4)


@pytest.mark.slow
def test_ten_second_clip_for_the_kiosk(engine, images):
    from engine.engines.diffusion.bundle import model_version

    assert isinstance(engine, Engine)
    assert engine.name == "art2mus"
    assert engine.model_version == model_version(helpers.tiny_bundle())
    clip = engine.generate(images[0], 10.0, seed=7)
    assert clip.sample_rate == 48000
    assert clip.audio.shape == (480_000, 2) and clip.audio.dtype == np.float32
    assert np.array_equal(clip.audio[:, 0], clip.audio[:, 1])
    assert clip.seed == 7 and clip.duration == 10.0
    # Loudness-matched like the default engine, with headroom for true peaks.
    import pyloudnorm
    import soxr

    # Measured with the reference meter, and true peak at 4x oversampling.
    assert pyloudnorm.Meter(48000).integrated_loudness(clip.audio.astype(np.float64)) == pytest.approx(
        -18.0, abs=0.1
    )
    oversampled = soxr.resample(clip.audio, 48000, 192000)
    assert 20 * np.log10(np.abs(oversampled).max()) <= -1.0 + 0.05
    assert clip.details["loudness_lufs"] == pytest.approx(-18.0, abs=0.1)
    assert "diffusion.scorer = 'none'" in clip.details["scorer"] and clip.score is None
    assert engine.params()["steps"] == STEPS


@pytest.mark.slow
def test_clip_loops_without_a_seam(engine, images):
    clip = engine.generate(images[1], 5.0, seed=3).audio[:, 0]
    # Played twice in a row, the jump at the loop point is no bigger than the clip's
    # ordinary sample-to-sample steps.
    steps = np.abs(np.diff(clip))
    seam = abs(float(clip[0]) - float(clip[-1]))
    assert seam <= np.percentile(steps, 99.9)


def test_crossfade_loop_is_continuous():
    sr = 8000
    t = np.arange(3 * sr) / sr
    rng = np.random.default_rng(0)
    x = np.sin(2 * np.pi * 220 * t + 3 * np.sin(2 * np.pi * 0.7 * t)) + 0.01 * rng.standard_normal(t.size)
    looped = audio_utils.crossfade_loop(x.astype(np.float32), sr, 0.5)
    assert looped.shape[0] == x.size - sr // 2
    twice = np.concatenate([looped, looped])
    steps = np.abs(np.diff(twice))
    assert steps[looped.size - 1] <= steps.max() * 0.5 + 1e-6
    # Outside the crossfade the audio is untouched.
    np.testing.assert_allclose(looped[: -sr // 2], x[sr // 2 : -sr // 2], atol=1e-6)
    with pytest.raises(ValueError, match="needs a clip of at least"):
        audio_utils.crossfade_loop(x[:100].astype(np.float32), sr, 0.5)


@pytest.mark.slow
def test_seed_per_artwork_independent_of_batching(engine, images):
    batch = engine.generate_batch([images[0], images[1], images[1]], 5.0, [12, 12, 99])
    alone = engine.generate(images[1], 5.0, seed=12)
    # An artwork's clip depends on its image and seed, not on its batch neighbours ...
    np.testing.assert_allclose(batch[1].audio, alone.audio, atol=1e-4)
    # ... and both the image and the seed change the music.
    assert np.abs(batch[0].audio - batch[1].audio).max() > 1e-2
    assert np.abs(batch[2].audio - batch[1].audio).max() > 1e-2


# ------------------------------------------------------------------ out of memory
# The batch halving is the pipeline's: it is tested on Art2MusPipeline.generate_from_loa with
# one DDIM step and a one-second clip, not through the whole engine.

OOM_KWARGS = {"steps": 1, "guidance_scale": 3.5, "duration": 1.0}


@pytest.fixture
def pipeline():
    """A fresh pipeline: it remembers the batch size that fitted (``max_batch``)."""
    from engine.engines.diffusion.bundle import load_bundle
    from engine.engines.diffusion.pipeline import Art2MusPipeline

    return Art2MusPipeline(load_bundle(helpers.tiny_bundle()))


def out_of_memory_above(pipeline, monkeypatch, limit: int) -> list[list[int]]:
    """Make ``pipeline.denoise`` fail like a full GPU for more than ``limit`` artworks.

    The fault is injected at the GPU boundary (this machine has no GPU to run out of
    memory); smaller batches run the real denoising. Returns the seeds of every call, failed
    ones included.
    """
    real = pipeline.denoise
    calls: list[list[int]] = []

    def denoise(loa, seeds, **kwargs):
        calls.append(list(seeds))
        if len(seeds) > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(loa, seeds, **kwargs)

    monkeypatch.setattr(pipeline, "denoise", denoise)
    return calls


def test_out_of_memory_halves_the_batch_and_remembers_it(pipeline, images, monkeypatch, caplog):
    loa = pipeline.loa_embeddings(pipeline.image_embeddings([*images, *images[:2]]))
    seeds = [1, 2, 3, 4, 5]
    expected = pipeline.generate_from_loa(loa, seeds, batch_size=4, **OOM_KWARGS)
    assert pipeline.max_batch is None

    calls = out_of_memory_above(pipeline, monkeypatch, 2)
    with caplog.at_level("WARNING"):
        waves = pipeline.generate_from_loa(loa, seeds, batch_size=4, **OOM_KWARGS)
    # Four artworks did not fit; two did, so the rest went two at a time.
    assert calls == [[1, 2, 3, 4], [1, 2], [3, 4], [5]]
    assert pipeline.max_batch == 2
    assert "out of memory: retrying with batches of 2" in caplog.text
    # Every artwork's audio, in order, as without the error (one generator per artwork: a
    # clip does not depend on its batch neighbours, up to float rounding).
    assert waves.shape == expected.shape == (5, expected.shape[1])
    assert min(np.abs(a - b).max() for i, a in enumerate(expected) for b in expected[i + 1 :]) > 1e-2
    np.testing.assert_allclose(waves, expected, rtol=0, atol=1e-5)

    # The next call starts at the size that fitted: no failed attempt.
    calls.clear()
    again = pipeline.generate_from_loa(loa[:3], seeds[:3], batch_size=4, **OOM_KWARGS)
    assert calls == [[1, 2], [3]]
    np.testing.assert_allclose(again, expected[:3], rtol=0, atol=1e-5)


def test_out_of_memory_for_a_single_artwork_is_an_error_naming_the_duration(pipeline, images, monkeypatch):
    loa = pipeline.loa_embeddings(pipeline.image_embeddings(images[:2]))
    calls = out_of_memory_above(pipeline, monkeypatch, 0)
    with pytest.raises(GenerationError, match="ran out of memory generating one 1-s clip") as info:
        pipeline.generate_from_loa(loa, [1, 2], batch_size=4, **OOM_KWARGS)
    assert isinstance(info.value.__cause__, torch.cuda.OutOfMemoryError)
    assert calls == [[1, 2], [1]]
    assert pipeline.max_batch == 1


class LoudestScorer:
    """A stand-in ranking (the real one would be ImageBind image–audio similarity)."""

    name = "test-rms"

    def __init__(self):
        self.calls = []

    def __call__(self, images, audio, sample_rate):
        self.calls.append(len(images))
        return np.sqrt(np.mean(np.square(audio), axis=1))


@pytest.mark.slow
def test_scorer_scores_every_candidate(images):
    from engine.engines.diffusion.engine import GENERATION_MARGIN_S

    scorer = LoudestScorer()
    engine = Art2MusEngine(helpers.tiny_bundle(), steps=2, scorer=scorer)
    # The worker asks for an artwork's candidates in one call: one UNet batch.
    clips = engine.generate_batch([images[0]] * 3, 5.0, [100, 101, 102])
    assert scorer.calls == [3]
    waves = engine.pipeline.generate(
        [images[0]] * 3,
        [100, 101, 102],
        steps=2,
        guidance_scale=3.5,
        duration=5.0 + engine.loop_crossfade + GENERATION_MARGIN_S,
    )
    rms = np.sqrt(np.mean(np.square(waves), axis=1))
    assert [c.score for c in clips] == pytest.approx(list(rms), rel=1e-4)
    assert engine.params()["scorer"] == "test-rms"


@pytest.mark.slow
def test_without_a_scorer_clips_carry_no_score(images, caplog):
    from engine.config import default_config

    config = default_config()
    config.engine.model, config.engine.steps, config.engine.candidates = helpers.tiny_bundle(), 2, 3
    with caplog.at_level("WARNING"):
        engine = create_art2mus_engine(config)
    assert "diffusion.scorer = 'none': the first clip is chosen" in caplog.text
    clip = engine.generate(images[0], 5.0, seed=42)
    assert clip.score is None and clip.seed == 42
    assert "diffusion.scorer = 'none'" in clip.details["scorer"]
    assert engine.params()["scorer"] is None


def test_bad_requests_are_refused(engine, images):
    with pytest.raises(ValueError, match="duration 2 s is out of range"):
        engine.generate(images[0], 2.0, seed=1)
    with pytest.raises(ValueError, match="seed -1 is out of range"):
        engine.generate(images[0], 5.0, seed=-1)
    with pytest.raises(ValueError, match="image 1: expected an RGB uint8 array"):
        engine.generate_batch([images[0], images[0].astype(np.float32)], 5.0, [1, 2])


def test_factory_reads_the_configuration(tmp_path):
    from engine.config import default_config

    config = default_config()
    config.engine.model = helpers.tiny_bundle()
    config.engine.steps, config.engine.guidance_scale, config.engine.batch_size = 2, 2.5, 3
    config.diffusion.loop_crossfade_seconds = 0.5
    engine = create_art2mus_engine(config)
    assert (engine.steps, engine.guidance_scale, engine.batch_size) == (2, 2.5, 3)
    assert engine.loop_crossfade == 0.5 and engine.device == "cpu" and engine.precision == "float32"
    config.diffusion.device = "potato"
    with pytest.raises(GenerationError, match=r"diffusion.device 'potato' is not a device"):
        create_art2mus_engine(config)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_half_precision_matches_fp32(images):
    fp32 = Art2MusEngine(helpers.tiny_bundle(), steps=4, device="cuda", precision="fp32")
    half = Art2MusEngine(helpers.tiny_bundle(), steps=4, device="cuda", precision="auto")
    assert half.precision in ("bfloat16", "float16")
    loa = fp32.pipeline.loa_embeddings(fp32.pipeline.image_embeddings(images))
    a = fp32.pipeline.denoise(loa, [1, 2, 3], steps=4, guidance_scale=3.5, duration=5.0)
    b = half.pipeline.denoise(loa, [1, 2, 3], steps=4, guidance_scale=3.5, duration=5.0)
    assert torch.isfinite(b).all()
    # Same noise and conditioning: the half-precision latents follow the fp32 ones closely.
    assert float((a - b).norm() / a.norm()) < 0.05
    clip = half.generate(images[0], 5.0, seed=1)
    assert np.isfinite(clip.audio).all() and clip.audio.shape == (5 * 48000, 2)


@pytest.mark.slow
def test_generate_cli_with_a_model_bundle(tmp_path):
    import soundfile as sf
    from click.testing import CliRunner

    from art2mus.cli import main

    config = tmp_path / "art2mus.toml"
    config.write_text("[engine]\nsteps = 2\n[diffusion]\nloop_crossfade_seconds = 1.0\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main,
        [
            "-c",
            str(config),
            "generate",
            "--engine",
            "art2mus",
            "--model",
            str(helpers.tiny_bundle()),
            "--duration",
            "6",
            "--seed",
            "4",
            "--out",
            str(out),
            str(DEMO / "the-night-cafe.png"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "art2mus engine" in result.output
    audio, rate = sf.read(out / "the-night-cafe.wav")
    assert rate == 48000 and audio.shape == (6 * 48000, 2)


def test_auto_falls_back_to_the_default_engine_with_the_reason(tmp_path, monkeypatch, caplog):
    """engine.name = auto on a GPU machine whose bundle is corrupt: the default engine plays."""
    pytest.importorskip("engine.engines.default.engine")
    from engine.config import default_config
    from engine.engines import registry

    folder = helpers.copy_bundle(tmp_path)
    weights = folder / "language_model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])  # truncated, as by an interrupted copy
    config = default_config()
    config.engine.name, config.engine.model = "auto", folder
    # The GPU boundary: this machine has none, so say there is one.
    monkeypatch.setattr(registry, "cuda_available", lambda: (True, "CUDA GPU (test)"))
    config.diffusion.device = "cpu"
    with caplog.at_level("INFO"):
        engine, why = registry.resolve_engine(config)
    assert engine.name == "default"
    assert why.startswith("default engine (auto: cannot load the art2mus engine")
    assert "language_model/model.safetensors: sha256 mismatch" in why
    assert "language_model/model.safetensors" in caplog.text
