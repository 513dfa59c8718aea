"""The default engine on the real demo paintings: loudness, peaks, seam, determinism, choices."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import resample_poly

from engine.catalog.images import load_rgb
from engine.engines.base import Engine, GenerationError
from engine.engines.default.composer import compose
from engine.engines.default.engine import DefaultEngine
from engine.engines.default.features import extract_features

RATE = 48000


@pytest.fixture(scope="module")
def engine() -> DefaultEngine:
    return DefaultEngine()


@pytest.fixture(scope="module")
def paintings(request) -> dict[str, np.ndarray]:
    from tests.conftest import DEMO

    return {p.stem: load_rgb(p) for p in sorted(DEMO.glob("*.png"))}


@pytest.fixture(scope="module")
def clips(engine, paintings):
    """An 8-s clip for every demo painting (seed 0)."""
    return {name: engine.generate(rgb, 8.0, 0) for name, rgb in paintings.items()}


def true_peak_dbfs(audio: np.ndarray) -> float:
    """True peak by 4x oversampling (polyphase FIR), the BS.1770 way, over a looped copy."""
    looped = np.concatenate([audio[-256:], audio, audio[:256]])  # the clip repeats
    up = resample_poly(looped, 4, 1, axis=0)
    return float(20 * np.log10(np.abs(up).max()))


def test_implements_the_engine_protocol(engine):
    assert isinstance(engine, Engine)
    assert engine.name == "default"
    assert engine.model_version.startswith("default-") and len(engine.model_version) <= 64
    assert engine.params()["sample_rate"] == RATE


def test_format_48k_stereo_float32(clips):
    for name, clip in clips.items():
        assert clip.sample_rate == RATE, name
        assert clip.audio.dtype == np.float32, name
        assert clip.audio.shape == (8 * RATE, 2), name
        assert np.isfinite(clip.audio).all(), name
        # Really stereo: the channels differ (panning, decorrelated reverb).
        assert not np.allclose(clip.audio[:, 0], clip.audio[:, 1]), name


def test_loudness_minus_18_lufs_and_true_peak_under_minus_1(clips):
    meter = pyloudnorm.Meter(RATE)
    for name, clip in clips.items():
        loudness = meter.integrated_loudness(clip.audio.astype(np.float64))
        assert loudness == pytest.approx(-18.0, abs=0.5), name
        assert true_peak_dbfs(clip.audio) <= -1.0, name
        assert clip.details["loudness_lufs"] == pytest.approx(loudness, abs=0.05)


def test_loop_seam_is_no_bigger_than_a_typical_step(clips):
    for name, clip in clips.items():
        a = clip.audio
        steps = np.abs(np.diff(a, axis=0))
        seam = np.abs(a[0] - a[-1])
        for ch in range(2):
            assert seam[ch] <= np.percentile(steps[:, ch], 99), (name, ch)
        # No hole at the seam either: the music is as present at the ends as in the middle.
        rms = lambda x: float(np.sqrt(np.mean(x**2)))  # noqa: E731
        whole = rms(a)
        assert rms(a[-RATE // 10 :]) > 0.1 * whole, name
        assert rms(a[: RATE // 10]) > 0.1 * whole, name


def test_same_image_duration_seed_is_bit_identical(engine, paintings):
    rgb = paintings["the-night-cafe"]
    first = engine.generate(rgb, 6.0, 7)
    again = engine.generate(rgb, 6.0, 7)
    fresh = DefaultEngine().generate(rgb.copy(), 6.0, 7)
    assert np.array_equal(first.audio, again.audio)
    assert np.array_equal(first.audio, fresh.audio)
    assert first.caption == fresh.caption
    other_seed = engine.generate(rgb, 6.0, 8)
    assert not np.array_equal(first.audio, other_seed.audio)
    # A new seed is a new take of the same piece: same key, tempo and instruments.
    for k in ("key_name", "tempo_bpm", "instruments"):
        assert other_seed.details[k] == first.details[k]


def test_a_clip_is_the_same_after_other_clips_and_in_a_fresh_engine(paintings):
    # The engine keeps rendered sounds across clips (synth.SoundBank): that must change no
    # sample, whatever was rendered before and however small the bank.
    names = ["harvest-at-la-crau", "the-night-cafe", "arched-hallway"]
    alone = {n: DefaultEngine().generate(paintings[n], 8.0, 3).audio for n in names}
    shared = DefaultEngine()
    shared.renderer.sounds.budget_bytes = 8 * 1024 * 1024  # sounds are dropped and made again
    for n in [*names, *reversed(names)]:
        assert np.array_equal(shared.generate(paintings[n], 8.0, 3).audio, alone[n]), n
    assert shared.renderer.sounds.reused > 0  # ...and the bank was used


def test_different_paintings_give_different_music(paintings):
    choices = {}
    for name, rgb in paintings.items():
        c = compose(extract_features(rgb), 30.0, 0).describe()
        choices[name] = (c["key_name"], c["tempo_bpm"], tuple(sorted(c["instruments"].items())))
    assert len(set(choices.values())) == len(paintings)
    keys = {k for k, _, _ in choices.values()}
    tempi = {t for _, t, _ in choices.values()}
    ensembles = {i for _, _, i in choices.values()}
    assert len(keys) >= 3 and len(tempi) >= 3 and len(ensembles) >= 4, choices


def test_clips_of_different_paintings_sound_different(clips):
    """Listening by proxy: long-term spectra and pitch content differ between paintings."""

    def spectrum(audio):
        mono = audio.mean(axis=1)
        frames = mono[: len(mono) // 4096 * 4096].reshape(-1, 4096)
        mag = np.abs(np.fft.rfft(frames * np.hanning(4096), axis=1)).mean(axis=0)
        return mag / np.linalg.norm(mag)

    spectra = {n: spectrum(c.audio) for n, c in clips.items()}
    names = sorted(spectra)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            similarity = float(spectra[a] @ spectra[b])
            assert similarity < 0.995, (a, b, similarity)


def test_a_piece_with_phrases_voices_and_harmonic_movement(paintings):
    c = compose(extract_features(paintings["harvest-at-la-crau"]), 30.0, 0)
    roles = {v.role for v in c.voices}
    assert {"pad", "bass", "melody"} <= roles
    assert len(c.chords) >= 4 and len(set(c.chords)) >= 3  # not one drone chord
    melody = next(v for v in c.voices if v.role == "melody")
    assert len(melody.notes) >= 8
    assert len({n.pitches for n in melody.notes}) >= 4
    for v in c.voices:
        for n in v.notes:
            assert 0 <= n.start < c.duration and n.length > 0
    # The tempo is fitted so whole bars fill the loop exactly.
    assert c.bars * c.beats_per_bar * 60.0 / c.tempo == pytest.approx(30.0)


def test_dark_calm_paintings_are_slow_low_and_sparse():
    rng = np.random.default_rng(0)
    dark = np.clip(rng.normal(35, 3, (300, 400, 3)), 0, 255).astype(np.uint8)  # smooth, dark
    dark[..., 2] += 10  # a little blue
    # Agitated, colourful brushwork: small blocks of random vivid colour.
    busy = rng.integers(0, 256, (75, 100, 3), dtype=np.uint8).repeat(4, 0).repeat(4, 1)
    c_dark = compose(extract_features(dark), 30.0, 0)
    c_busy = compose(extract_features(busy), 30.0, 0)
    assert c_dark.dark_calm and not c_busy.dark_calm
    assert c_dark.tempo < 60 and c_busy.tempo > c_dark.tempo + 15
    assert c_dark.mode in ("aeolian", "phrygian", "dorian")
    mel = lambda c: next(v for v in c.voices if v.role == "melody")  # noqa: E731
    mean_pitch = lambda v: np.mean([p for n in v.notes for p in n.pitches])  # noqa: E731
    assert mean_pitch(mel(c_dark)) < mean_pitch(mel(c_busy)) - 5
    assert c_dark.note_count() < c_busy.note_count() / 2
    assert {v.role for v in c_busy.voices} >= {"arpeggio", "texture"}


def test_caption_says_it_plainly_then_names_the_choices(clips):
    for name, clip in clips.items():
        d = clip.details
        plain, detail = clip.caption.split("\n")
        # First for everyone: a mood, then instruments, no music theory.
        mood, instruments = plain.split(": ")
        assert mood.split(" and ")[0].lower() in ("calm", "gentle", "flowing", "lively"), name
        assert d["key_name"] not in plain and "pad" not in plain and "drone" not in plain, name
        assert instruments, name
        # Then the musical detail.
        assert d["key_name"] in detail, name
        assert " over " in detail, name
        assert detail.split(",")[0] in ("slow", "unhurried", "flowing", "lively"), name


def test_bad_requests_are_refused_with_the_range(engine, paintings):
    rgb = paintings["arched-hallway"]
    with pytest.raises(ValueError, match="5 to 120"):
        engine.generate(rgb, 4.9, 0)
    with pytest.raises(ValueError, match="5 to 120"):
        engine.generate(rgb, 121.0, 0)
    with pytest.raises(ValueError, match="0 to 2147483647"):
        engine.generate(rgb, 10.0, -1)
    with pytest.raises(GenerationError, match="RGB"):
        engine.generate(rgb[..., 0], 10.0, 0)  # greyscale array
    with pytest.raises(GenerationError, match="too small"):
        engine.generate(np.zeros((1, 1, 3), np.uint8), 10.0, 0)


def test_batch_matches_single(engine, paintings):
    imgs = [paintings["arched-hallway"], paintings["church-at-auvers"]]
    batch = engine.generate_batch(imgs, 5.0, [1, 2])
    assert np.array_equal(batch[1].audio, engine.generate(imgs[1], 5.0, 2).audio)
    with pytest.raises(ValueError):
        engine.generate_batch(imgs, 5.0, [1])


def test_model_version_follows_the_soundfont(tmp_path):
    from engine.engines.default.renderer import RendererError, bundled_soundfont

    copy = tmp_path / "same.sf2"
    copy.write_bytes(bundled_soundfont().read_bytes())
    assert DefaultEngine(copy).model_version == DefaultEngine().model_version
    changed = tmp_path / "changed.sf2"
    changed.write_bytes(bundled_soundfont().read_bytes() + b"\0")
    assert DefaultEngine(changed).model_version != DefaultEngine().model_version
    with pytest.raises(RendererError, match=r"missing.sf2"):
        DefaultEngine(tmp_path / "missing.sf2")


def test_warm_colour_schemes_get_brighter_timbres():
    rng = np.random.default_rng(1)
    base = rng.normal(0, 12, (240, 320, 1))  # the same light brushwork for both
    warm = np.clip(base + np.array([215, 140, 60]), 0, 255).astype(np.uint8)
    cool = np.clip(base + np.array([60, 120, 200]), 0, 255).astype(np.uint8)
    c_warm = compose(extract_features(warm), 30.0, 0)
    c_cool = compose(extract_features(cool), 30.0, 0)
    brightness = lambda c: np.mean([v.instrument.bright for v in c.voices])  # noqa: E731
    assert brightness(c_warm) > brightness(c_cool) + 0.1
