"""Parts of the default engine: features, mastering, the engine registry."""

from __future__ import annotations

import itertools

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import resample_poly

from engine.catalog.images import load_rgb
from engine.config import default_config
from engine.engines.default import mastering
from engine.engines.default.features import extract_features
from engine.engines.registry import EngineLoadError, create_engine, resolve_engine

RATE = 48000


def test_features_are_deterministic_and_in_range(demo_paintings):
    for path in demo_paintings:
        rgb = load_rgb(path)
        f = extract_features(rgb)
        assert f == extract_features(rgb.copy())
        for name in ("brightness", "saturation", "contrast", "edge_density", "texture", "busyness"):
            assert 0.0 <= getattr(f, name) <= 1.0, (path.name, name)
        for name in ("warmth", "mass_x", "mass_y"):
            assert -1.0 <= getattr(f, name) <= 1.0, (path.name, name)
        assert len(f.palette) == 5 and abs(sum(c.share for c in f.palette) - 1) < 0.01
        assert [c.share for c in f.palette] == sorted((c.share for c in f.palette), reverse=True)


def test_features_see_what_a_person_sees():
    h, w = 240, 320
    orange = np.zeros((h, w, 3), np.uint8) + np.array([230, 140, 40], np.uint8)
    blue = np.zeros((h, w, 3), np.uint8) + np.array([40, 80, 200], np.uint8)
    grey = np.full((h, w, 3), 128, np.uint8)
    f_orange, f_blue, f_grey = (extract_features(x) for x in (orange, blue, grey))
    assert f_orange.warmth > 0.6 and f_blue.warmth < -0.3 and abs(f_grey.warmth) < 0.01
    assert f_grey.saturation < 0.01 < f_blue.saturation
    assert f_grey.busyness < 0.05
    # Visual mass: a bright block on the left, low in the frame.
    dark = np.full((h, w, 3), 20, np.uint8)
    dark[160:, :80] = 240
    f = extract_features(dark)
    assert f.mass_x < -0.5 and f.mass_y > 0.5
    # Stripes are busier than a smooth gradient.
    stripes = np.zeros((h, w, 3), np.uint8)
    stripes[:, ::4] = 255
    gradient = np.repeat(np.linspace(0, 255, w, dtype=np.uint8)[None, :, None], h, 0).repeat(3, 2)
    assert extract_features(stripes).busyness > extract_features(gradient).busyness + 0.3


def test_loudness_matches_pyloudnorm():
    rng = np.random.default_rng(3)
    for seconds in (5, 12.34, 30):
        n = int(seconds * RATE)
        x = (rng.standard_normal((n, 2)) * np.linspace(0.02, 0.3, n)[:, None]).astype(np.float32)
        ours = mastering.integrated_loudness(x, RATE)
        ref = pyloudnorm.Meter(RATE).integrated_loudness(x.astype(np.float64))
        assert ours == pytest.approx(ref, abs=0.01)


def test_master_hits_target_and_limits_true_peak_on_a_peaky_signal():
    rng = np.random.default_rng(4)
    n = 10 * RATE
    x = (0.01 * rng.standard_normal((n, 2))).astype(np.float32)
    # Loud bursts whose peaks fall between samples (the BS.1770 test case: a sine at a
    # quarter of the sample rate, sampled 45 degrees off its peaks, reads 3 dB low).
    burst = 0.9 * np.sin(np.pi / 2 * np.arange(480) + np.pi / 4) * np.hanning(480)
    quiet = np.ones(n, bool)  # away from the bursts (and the limiter's 8-ms window)
    for pos in rng.integers(1000, n - 1480, 40):
        x[pos : pos + 480, :] += burst.astype(np.float32)[:, None]
        quiet[pos - 1000 : pos + 1480] = False
    out, loudness, peak = mastering.master(x, RATE)
    ref = pyloudnorm.Meter(RATE).integrated_loudness(out.astype(np.float64))
    assert ref == pytest.approx(-18.0, abs=0.1) and loudness == pytest.approx(ref, abs=0.05)
    looped = np.concatenate([out[-64:], out, out[:64]])
    tp = 20 * np.log10(np.abs(resample_poly(looped, 4, 1, axis=0)).max())
    assert tp <= -1.0 and peak <= -1.0
    # The limiter only touched the bursts: elsewhere the signal is just scaled.
    ratio = out[quiet] / np.where(x[quiet] == 0, 1, x[quiet])
    assert np.allclose(ratio, np.median(ratio), rtol=1e-4)


def test_registry_creates_the_default_engine_and_explains_auto(tmp_path):
    config = default_config()
    assert create_engine("default", config).name == "default"
    config.engine.name = "default"
    engine, why = resolve_engine(config)
    assert engine.name == "default" and "configured" in why
    config.engine.name = "auto"
    config.engine.model = None
    engine, why = resolve_engine(config)
    assert engine.name == "default" and "no model bundle configured" in why
    config.engine.model = tmp_path / "no-such-bundle"
    engine, why = resolve_engine(config)
    assert engine.name == "default" and str(tmp_path / "no-such-bundle") in why


def test_explicit_art2mus_that_cannot_load_names_the_model_folder(tmp_path):
    config = default_config()
    config.engine.model = tmp_path / "missing-model"
    with pytest.raises(EngineLoadError, match="missing-model"):
        create_engine("art2mus", config)
    with pytest.raises(EngineLoadError, match="unknown engine 'nonsense'"):
        create_engine("nonsense", config)


def test_a_sound_is_the_same_whatever_the_synthesizer_played_before():
    # FluidSynth starts a reused voice from the last note's state (the first 64 frames differ
    # by up to -84 dB); the priming chord before every sound makes each sound history-free.
    from engine.engines.default.instruments import ARPEGGIOS, BASSES, MELODIES, PADS, TEXTURES
    from engine.engines.default.renderer import bundled_soundfont
    from engine.engines.default.synth import BLOCK, Synth

    programs = sorted({i.program for group in (PADS, BASSES, MELODIES, ARPEGGIOS, TEXTURES) for i in group})
    rng = np.random.default_rng(11)
    sounds = [
        (
            program,
            (int(rng.integers(30, 90)),),
            int(rng.choice([16, 48, 80, 112])),
            int(rng.integers(1, 40)) * 8 * BLOCK,
        )
        for program in programs
    ]
    shared = Synth(bundled_soundfont(), RATE)
    try:
        heard = {i: shared.render(*sounds[i]) for i in rng.permutation(len(sounds)).tolist()}
    finally:
        shared.close()
    for i, sound in enumerate(sounds):
        fresh = Synth(bundled_soundfont(), RATE)
        try:
            assert np.array_equal(fresh.render(*sound), heard[i]), sound
        finally:
            fresh.close()


def _filtered_in_pieces(kernels, sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """x filtered in uneven pieces, the state carried (as mastering does)."""
    y = np.array(x, order="C")
    state = np.zeros((x.shape[0], sos.shape[0], 2), dtype=x.dtype)
    edges = [0, 1, 700, 701, 2400, x.shape[1]]
    for a, b in itertools.pairwise(edges):
        piece = np.ascontiguousarray(y[:, a:b])
        kernels.sosfilt_rows_in_place(sos, piece, state)
        y[:, a:b] = piece
    return y


def test_kernels_give_scipys_numbers_to_the_bit():
    # kernels.py calls scipy's compiled FFT and biquad kernels without importing scipy.fft and
    # scipy.signal (1 s of start-up); the numbers must be those of the public functions.
    import scipy.fft
    from scipy import signal

    from engine.engines.default import kernels

    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((2, 4801)).astype(dtype)
        spec = kernels.rfft(x, axis=1)
        assert spec.dtype == scipy.fft.rfft(x, axis=1).dtype
        assert np.array_equal(spec, scipy.fft.rfft(x, axis=1))
        assert np.array_equal(kernels.rfft(x[0]), scipy.fft.rfft(x[0]))
        for n in (4801, 4800, 6000, 3000):
            assert np.array_equal(kernels.irfft(spec, n=n, axis=1), scipy.fft.irfft(spec, n=n, axis=1))
        sos = mastering._k_weighting_sos(RATE).astype(dtype)
        assert np.array_equal(_filtered_in_pieces(kernels, sos, x), signal.sosfilt(sos, x, axis=1))


def test_k_weighting_coefficients_are_pyloudnorms():
    for rate in (44100, 48000, 16000):
        meter = pyloudnorm.Meter(rate)
        ref = [
            np.concatenate([meter._filters[s].b, meter._filters[s].a]) for s in ("high_shelf", "high_pass")
        ]
        assert np.array_equal(mastering._k_weighting_sos(rate), np.array(ref))


def test_the_engine_starts_without_heavy_imports():
    # `art2mus generate` on a few paintings spent more on imports than on music: the engine
    # must not import scipy.signal (via pyloudnorm), scipy.ndimage, pretty_midi or torch.
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = (
        "import sys, numpy as np; from engine.engines.default.engine import DefaultEngine; "
        "DefaultEngine().generate(np.full((64, 64, 3), 90, np.uint8), 6.0, 0); "
        "print('heavy:', *(m for m in ('scipy.signal', 'scipy.ndimage', 'scipy.stats', 'scipy.fft', "
        "'pyloudnorm', 'pretty_midi', 'torch') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True
    )
    # pyfluidsynth may print where it found the library; read only our own line.
    line = next(row for row in out.stdout.splitlines() if row.startswith("heavy:"))
    assert line.split()[1:] == []


def test_kernels_fall_back_to_scipys_public_functions(monkeypatch):
    # If a scipy release moves its compiled modules, the engine still works (and gives the
    # same numbers): it calls scipy.fft / scipy.signal instead.
    import scipy.fft
    from scipy import signal

    from engine.engines.default import kernels

    monkeypatch.setattr(kernels, "_load_extension", lambda name: None)
    for cached in (kernels._pocketfft, kernels._sosfilt_kernel):
        cached.cache_clear()
    try:
        assert kernels._pocketfft() is None and kernels._sosfilt_kernel() is None
        x = np.random.default_rng(6).standard_normal((2, 3000)).astype(np.float32)
        spec = kernels.rfft(x, axis=1)
        assert np.array_equal(spec, scipy.fft.rfft(x, axis=1))
        assert np.array_equal(kernels.irfft(spec, n=3000, axis=1), scipy.fft.irfft(spec, n=3000, axis=1))
        sos = mastering._k_weighting_sos(RATE).astype(np.float32)
        assert np.array_equal(_filtered_in_pieces(kernels, sos, x), signal.sosfilt(sos, x, axis=1))
    finally:
        for cached in (kernels._pocketfft, kernels._sosfilt_kernel):
            cached.cache_clear()
