"""training/pairing.py: the blockwise greedy pairing equals the brute-force definition."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from training.pairing import PairingStats, greedy_pairs, greedy_pairs_reference


@pytest.mark.parametrize(
    ("n_audio", "n_images", "k", "seed"),
    [(120, 150, 2, 0), (150, 120, 3, 1), (80, 80, 1, 2), (60, 200, 8, 3)],
)
def test_blockwise_equals_brute_force(n_audio, n_images, k, seed):
    rng = np.random.default_rng(seed)
    audio, images = rng.normal(size=(n_audio, 12)), rng.normal(size=(n_images, 12))
    stats = PairingStats()
    got = greedy_pairs(audio, images, k=k, audio_block=17, image_block=23, stats=stats)
    np.testing.assert_array_equal(got, greedy_pairs_reference(audio, images))
    if k <= 3:
        assert stats.refills > 0  # small k: the refill path was exercised
    paired = got[got >= 0]
    assert len(set(paired.tolist())) == len(paired) == min(n_audio, n_images)


def test_highest_similarity_first_not_audio_order():
    # audio 0 likes image 0 a little; audio 1 likes it a lot: audio 1 gets it.
    images = np.array([[1.0, 0.0], [0.0, 1.0]])
    audio = np.array([[1.0, 0.9], [1.0, 0.05]])
    assert greedy_pairs(audio, images, k=1).tolist() == [1, 0]


def test_pair_command_writes_a_pairs_csv(tmp_path):
    from click.testing import CliRunner

    from art2mus.cli import main

    rng = np.random.default_rng(0)
    np.save(tmp_path / "a.npy", rng.normal(size=(5, 4)).astype(np.float32))
    np.save(tmp_path / "i.npy", rng.normal(size=(7, 4)).astype(np.float32))
    (tmp_path / "a.txt").write_text("".join(f"audio/{n}.mp3\n" for n in range(5)))
    (tmp_path / "i.txt").write_text("".join(f"images/{n}.jpg\n" for n in range(7)))
    r = CliRunner().invoke(
        main,
        [
            "train",
            "pair",
            "--audio-embeds",
            str(tmp_path / "a.npy"),
            "--image-embeds",
            str(tmp_path / "i.npy"),
            "--audio-list",
            str(tmp_path / "a.txt"),
            "--image-list",
            str(tmp_path / "i.txt"),
            "--out",
            str(tmp_path / "pairs.csv"),
            "--k",
            "2",
        ],
    )
    assert r.exit_code == 0, r.output
    from training.data import read_pairs

    pairs = read_pairs(tmp_path / "pairs.csv")
    ref = greedy_pairs_reference(np.load(tmp_path / "a.npy"), np.load(tmp_path / "i.npy"))
    assert [(p.audio.name, p.image.name) for p in pairs] == [
        (f"{a}.mp3", f"{i}.jpg") for a, i in enumerate(ref)
    ]
