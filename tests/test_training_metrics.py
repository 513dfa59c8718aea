"""training/metrics.py, vggish.py and `art2mus train evaluate`."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from training.metrics import db_spectrum, fad, frechet_distance, imagebind_score, kl_db_spectrum_paper


def test_frechet_distance_of_two_gaussians_is_the_closed_form():
    # Diagonal covariances: ‖μ1 − μ2‖² + Σ (√s1 − √s2)²
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    closed = 5.0 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 1) ** 2
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(closed, abs=1e-9)
    # a rotated (non-diagonal) pair: the distance is rotation invariant
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    rot = frechet_distance(q @ mu1, q @ np.diag(s1) @ q.T, q @ mu2, q @ np.diag(s2) @ q.T)
    assert rot == pytest.approx(closed, abs=1e-6)
    # and from samples, FAD converges to it
    rng = np.random.default_rng(1)
    a = rng.normal(mu1, np.sqrt(s1), size=(200_000, 3))
    b = rng.normal(mu2, np.sqrt(s2), size=(200_000, 3))
    assert fad(a, b) == pytest.approx(closed, rel=0.01)
    assert fad(a, a) == pytest.approx(0.0, abs=1e-9)


def test_kl_of_db_spectra_is_small_zero_for_equal_and_ordered():
    t = np.arange(16000) / 16000
    noise = np.random.default_rng(0).normal(scale=0.01, size=t.shape)  # music is never a pure tone
    low, high = np.sin(2 * np.pi * 220 * t) + noise, np.sin(2 * np.pi * 3000 * t) + noise
    p = db_spectrum(low)
    assert p.shape == (513,) and p.sum() == pytest.approx(1.0)
    assert kl_db_spectrum_paper([low], [low]) == pytest.approx(0.0, abs=1e-12)
    near = kl_db_spectrum_paper([low], [np.sin(2 * np.pi * 230 * t) + noise])
    far = kl_db_spectrum_paper([low], [high])
    assert 0 < near < far < 1  # values of the paper's order of magnitude, not nats of labels


def test_imagebind_score_is_mean_cosine():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert imagebind_score(a, a) == pytest.approx(1.0)
    assert imagebind_score(a, np.array([[0.0, 1.0], [0.0, 3.0]])) == pytest.approx(0.5)


@pytest.mark.slow  # two full-size VGGish inits (72M parameters)
def test_vggish_features_and_shapes():
    import torch

    from training.vggish import VGGish, mel_matrix, waveform_to_examples

    m = mel_matrix()
    assert m.shape == (257, 64) and (m[0] == 0).all() and (m >= 0).all()
    t = np.arange(3 * 16000) / 16000
    ex = waveform_to_examples(np.sin(2 * np.pi * 1000 * t))
    assert ex.shape == (3, 96, 64)
    keys = set(VGGish().state_dict())
    assert {"features.0.weight", "features.13.bias", "embeddings.4.weight"} <= keys  # torchvggish's layout
    with torch.no_grad():
        assert VGGish()(torch.from_numpy(ex)).shape == (3, 128)


@pytest.mark.slow
def test_evaluate_generates_validation_clips_and_scores_them(tmp_path):
    import json

    import diffusion_helpers as helpers
    import torch
    import training_helpers as data_helpers
    from click.testing import CliRunner

    from art2mus.cli import main

    runner = CliRunner()
    run = tmp_path / "run"
    r = runner.invoke(
        main,
        [
            "train",
            "run",
            "--data",
            str(data_helpers.prepared_data()),
            "--model",
            str(helpers.tiny_bundle("imagebind")),
            "--out",
            str(run),
            "--max-steps",
            "2",
            "--batch-size",
            "2",
            "--val-every",
            "2",
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["train", "evaluate", str(run), "--steps", "2", "--seconds", "2"])
    assert r.exit_code == 0, r.output
    result = json.loads((run / "eval.json").read_text())
    assert result["clips"] == 2 and result["fad"] >= 0 and result["kl_db_spectrum_paper"] > 0
    assert result["ibsc_art_gen"] is None and "--imagebind-audio" in result["ibsc_note"]
    assert len(list((run / "eval").glob("*.wav"))) == 2
    # with a (tiny, random) ImageBind audio tower in the vision encoder's 1024-d space
    from engine.engines.diffusion.imagebind_audio import (
        ImageBindAudio,
        ImageBindAudioConfig,
        save_audio_tower,
    )

    tower = ImageBindAudio(ImageBindAudioConfig(width=32, layers=1, heads=4, embed_dim=1024))
    save_audio_tower(tower.init_random(torch.Generator().manual_seed(0)), tmp_path / "ib-audio")
    r = runner.invoke(
        main,
        [
            "train",
            "evaluate",
            str(run),
            "--steps",
            "2",
            "--seconds",
            "2",
            "--imagebind-audio",
            str(tmp_path / "ib-audio"),
        ],
    )
    assert r.exit_code == 0, r.output
    result = json.loads((run / "eval.json").read_text())
    assert (
        -1 <= result["ibsc_art_gen"] <= 1 and -1 <= result["ibsc_gt_gen"] <= 1 and "IBSc(gt, gen)" in r.output
    )
