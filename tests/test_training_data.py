"""training/: pairs.csv, the ArtSound converter, AudioLDM 2's mel, the split, the config."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from training.artsound import convert_artsound, fma_audio_path
from training.config import load_config
from training.data import (
    DataError,
    audio_to_mel,
    mel_basis,
    mel_spectrogram,
    normalize_wav,
    read_pairs,
    write_pairs,
)
from training.split import Part, make_split, read_split, write_split


def test_pairs_csv_paths_are_relative_to_the_csv(tmp_path):
    write_pairs(tmp_path / "d" / "pairs.csv", [{"image": "a.png", "audio": "x/a.wav", "style": "baroque"}])
    (pair,) = read_pairs(tmp_path / "d" / "pairs.csv")
    assert pair.image == tmp_path / "d" / "a.png" and pair.audio == tmp_path / "d" / "x" / "a.wav"
    assert pair.style == "baroque" and pair.key == "0"


def test_pairs_csv_problems_name_file_and_line(tmp_path):
    bad = tmp_path / "pairs.csv"
    bad.write_text("image,sound\na.png,b.wav\n")
    with pytest.raises(DataError, match=r"missing column.*audio"):
        read_pairs(bad)
    bad.write_text("id,image,audio\n1,a.png,a.wav\n1,b.png,b.wav\n")
    with pytest.raises(DataError, match="line 3: duplicate id '1'"):
        read_pairs(bad)


def _reference_mel(wave: np.ndarray) -> np.ndarray:
    """AudioLDM 2's TacotronSTFT written again in numpy: reflect pad, periodic Hann, |rfft|."""
    from scipy.signal import get_window

    pad = (1024 - 160) // 2
    y = np.pad(wave.astype(np.float64), pad, mode="reflect")
    frames = 1 + (len(y) - 1024) // 160
    idx = np.arange(1024)[None, :] + 160 * np.arange(frames)[:, None]
    spec = np.abs(np.fft.rfft(y[idx] * get_window("hann", 1024), axis=1))
    return np.log(np.clip(spec @ mel_basis().T.astype(np.float64), 1e-5, None))


@pytest.mark.slow  # imports transformers (its mel filter bank) and torch: ~4 s here
def test_mel_is_audioldm2s_for_a_ten_second_crop(tmp_path):
    import soundfile as sf

    rate = 44100
    t = np.arange(12 * rate) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t)
    sf.write(tmp_path / "a.wav", np.stack([wave, wave], 1), rate)
    mel = audio_to_mel(tmp_path / "a.wav")
    assert tuple(mel.shape) == (1000, 64)  # → (8, 250, 16) latents
    crop = np.asarray(normalize_wav(np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)))
    assert abs(float(np.abs(crop).max()) - 0.5) < 1e-6
    ours = mel_spectrogram(crop).numpy()
    np.testing.assert_allclose(ours, _reference_mel(crop), rtol=1e-3, atol=1e-4)  # float32 vs float64
    # the 440-Hz tone (FFT bin 440·1024/16000 ≈ 28) lands in the mel band that weighs that bin most
    assert int(ours.mean(0).argmax()) == int(np.argmax(mel_basis()[:, 28]))


def test_slaney_filter_bank_shape_and_norm():
    bank = mel_basis()
    assert bank.shape == (64, 513)
    # Slaney norm: each triangle has area 2 / (f_hi - f_lo) in Hz, so widths × peaks are constant-ish
    assert (bank >= 0).all() and (bank.sum(axis=1) > 0).all()
    assert bank[:, 1024 * 8000 // 16000 + 1 :].sum() == 0  # nothing above fmax 8000 Hz


def test_unreadable_and_silent_audio_raise_value_errors(tmp_path):
    import soundfile as sf

    (tmp_path / "bad.wav").write_bytes(b"not audio")
    with pytest.raises(ValueError, match="cannot be decoded"):
        audio_to_mel(tmp_path / "bad.wav")
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    with pytest.raises(ValueError, match="silent"):
        audio_to_mel(tmp_path / "silent.wav")


def test_artsound_layout_converts_and_counts_missing_files(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "monet_1.jpg").write_bytes(b"x")
    track = fma_audio_path(tmp_path / "fma", 2)
    assert track.relative_to(tmp_path / "fma").as_posix() == "000/000002.mp3"
    track.parent.mkdir(parents=True)
    track.write_bytes(b"x")
    (tmp_path / "t.csv").write_text(
        "image,track_id,style\nmonet_1.jpg,2,Impressionism\nmissing.jpg,2,x\nmonet_1.jpg,99,x\n"
    )
    report = convert_artsound(
        tmp_path / "t.csv", tmp_path / "img", tmp_path / "fma", tmp_path / "out" / "pairs.csv"
    )
    assert (report.written, report.missing_image, report.missing_audio) == (1, 1, 1)
    (pair,) = read_pairs(tmp_path / "out" / "pairs.csv")
    assert (
        pair.image.resolve() == (tmp_path / "img" / "monet_1.jpg").resolve() and pair.style == "Impressionism"
    )


def test_split_is_stratified_repeatable_and_written(tmp_path):
    from training.data import Pair

    pairs = [
        Pair(f"{s}{i}", tmp_path, tmp_path, style=s)
        for s, n in (("a", 200), ("b", 50), ("c", 3))
        for i in range(n)
    ]
    split = make_split(pairs, val_count=10, seed=3)
    assert split == make_split(pairs, val_count=10, seed=3) and split != make_split(
        pairs, val_count=10, seed=4
    )
    test = set(split.test)
    assert sum(k.startswith("a") for k in test) == 20 and sum(k.startswith("b") for k in test) == 5
    assert sum(k.startswith("c") for k in test) == 1
    assert not test & set(split.train) and set(split.val) <= test and len(split.val) == 10
    write_split(split, tmp_path / "split")
    assert read_split(tmp_path / "split") == split
    assert (tmp_path / "split" / f"{Part.VAL}.txt").read_text().count("\n") == 10


def test_config_defaults_are_the_papers_and_files_are_checked(tmp_path):
    cfg = load_config()
    assert (cfg.lr, cfg.warmup, cfg.max_steps, cfg.batch_size, cfg.min_snr_gamma) == (
        2e-5,
        1324,
        37200,
        128,
        5.0,
    )
    f = tmp_path / "t.toml"
    f.write_text("[train]\nlr = 1\nwarmup = 10\n")
    assert load_config(f, {"warmup": 3}).warmup == 3 and load_config(f).lr == 1.0
    f.write_text("[train]\nlearning_rate = 1e-4\n")
    with pytest.raises(ValueError, match="unknown key 'learning_rate'"):
        load_config(f)
