"""Training pairs: a folder with ``pairs.csv``, ArtSound's layout, and audio → AudioLDM 2 mel.

``pairs.csv`` has one row per (image, audio) pair; ``image`` and ``audio`` are required and
are paths relative to the CSV's folder; ``style`` (used to stratify the split), ``genre`` and
``caption`` are optional. A row's key is its ``id`` column where there is one, otherwise its
row number, so a split file still names the same pairs after the CSV is moved.

The mel spectrogram is AudioLDM 2's own (``audioldm2/utilities/audio/stft.py`` and the
dataset's ``read_wav_file``), because the frozen VAE only understands that one:

* audio decoded, down-mixed to mono, resampled to 16 kHz;
* the crop (10 s, the centre of the track: deterministic, so a precompute is repeatable);
* ``normalize_wav``: minus the mean, divided by (max |x| + 1e-8), times 0.5;
* reflect-padded by (n_fft − hop)/2 on each side, STFT with n_fft = window = 1024, hop 160,
  Hann window, ``center=False``, magnitude (not power);
* a Slaney-style mel filter bank (librosa's default: 64 mels, 0–8000 Hz, Slaney norm);
* ``log(clamp(mel, 1e-5))``, transposed to (frames, 64).

A 10-s crop gives exactly 1000 frames, which the VAE maps to (8, 250, 16) latents.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 1024
WINDOW = 1024
HOP = 160
MEL_BINS = 64
FMIN = 0.0
FMAX = 8000.0
CROP_SECONDS = 10.0
LOG_FLOOR = 1e-5


class DataError(ValueError):
    """A pairs table that cannot be used; the message names the file and the line."""


class SkipReason(StrEnum):
    """Why a pair was left out of the precompute (counted, never a crash)."""

    IMAGE_UNREADABLE = "image unreadable"
    AUDIO_UNREADABLE = "audio unreadable"
    AUDIO_SILENT = "audio silent or too short"


@dataclass(frozen=True)
class Pair:
    key: str
    image: Path
    audio: Path
    style: str = ""
    genre: str = ""
    caption: str = ""


def read_pairs(csv_path: str | os.PathLike) -> list[Pair]:
    """Every row of a ``pairs.csv``; refuses a missing column or a duplicate key."""
    path = Path(csv_path)
    if not path.is_file():
        raise DataError(f"{path}: pairs file not found")
    base = path.parent
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = set(reader.fieldnames or [])
        missing = {"image", "audio"} - columns
        if missing:
            raise DataError(f"{path}: missing column(s) {sorted(missing)}; found {sorted(columns)}")
        pairs: list[Pair] = []
        seen: set[str] = set()
        for n, row in enumerate(reader):
            line = n + 2  # 1-based, after the header
            if not row["image"] or not row["audio"]:
                raise DataError(f"{path}, line {line}: 'image' and 'audio' must not be empty")
            key = (row.get("id") or "").strip() or str(n)
            if key in seen:
                raise DataError(f"{path}, line {line}: duplicate id {key!r}")
            seen.add(key)
            pairs.append(
                Pair(
                    key=key,
                    image=base / row["image"],
                    audio=base / row["audio"],
                    style=(row.get("style") or "").strip(),
                    genre=(row.get("genre") or "").strip(),
                    caption=(row.get("caption") or "").strip(),
                )
            )
    return pairs


def write_pairs(csv_path: str | os.PathLike, rows: Iterator[dict[str, str]] | list[dict[str, str]]) -> int:
    """Write a ``pairs.csv`` (image/audio relative to its folder); returns the row count."""
    path = Path(csv_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = ["id", "image", "audio", "style", "genre", "caption"]
    count = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in fields})
            count += 1
    return count


# --------------------------------------------------------------------------- audio


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 at ``sample_rate``; raises ``ValueError`` naming the file when unreadable."""
    import soundfile as sf

    from engine.audio_utils import resample

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises its own error types (and RuntimeError)
        raise ValueError(f"{path}: audio cannot be decoded ({exc})") from None
    mono = data.mean(axis=1)
    if rate != sample_rate:
        mono = resample(mono, rate, sample_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def centre_crop(
    wave: np.ndarray, seconds: float = CROP_SECONDS, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """The middle ``seconds`` of a track, zero-padded at the end when it is shorter."""
    n = int(round(seconds * sample_rate))
    if len(wave) >= n:
        start = (len(wave) - n) // 2
        return wave[start : start + n]
    return np.pad(wave, (0, n - len(wave)))


def normalize_wav(wave: np.ndarray) -> np.ndarray:
    """AudioLDM's ``normalize_wav``: zero mean, peak 0.5."""
    wave = wave - np.mean(wave)
    wave = wave / (np.max(np.abs(wave)) + 1e-8)
    return (wave * 0.5).astype(np.float32)


@lru_cache(maxsize=4)
def mel_basis() -> np.ndarray:
    """(64, 513) Slaney mel filters, as ``librosa.filters.mel(sr=16000, n_fft=1024, n_mels=64,
    fmin=0, fmax=8000)`` (transformers' implementation of librosa's; librosa is not a dependency)."""
    from transformers.audio_utils import mel_filter_bank

    bank = mel_filter_bank(
        num_frequency_bins=N_FFT // 2 + 1,
        num_mel_filters=MEL_BINS,
        min_frequency=FMIN,
        max_frequency=FMAX,
        sampling_rate=SAMPLE_RATE,
        norm="slaney",
        mel_scale="slaney",
    )
    return np.ascontiguousarray(bank.T, dtype=np.float32)


def mel_spectrogram(wave: np.ndarray):
    """(frames, 64) log-mel of a normalised 16 kHz waveform, AudioLDM 2's TacotronSTFT."""
    import torch
    import torch.nn.functional as F

    y = torch.from_numpy(np.asarray(wave, dtype=np.float32))[None, None]
    pad = (N_FFT - HOP) // 2
    y = F.pad(y, (pad, pad), mode="reflect")[:, 0]
    spec = torch.stft(
        y,
        N_FFT,
        hop_length=HOP,
        win_length=WINDOW,
        window=torch.hann_window(WINDOW),
        center=False,
        normalized=False,
        onesided=True,
        return_complex=True,
    ).abs()
    mel = torch.from_numpy(mel_basis()) @ spec[0]
    return torch.log(torch.clamp(mel, min=LOG_FLOOR)).T.contiguous()


def audio_to_mel(path: str | os.PathLike, seconds: float = CROP_SECONDS):
    """File → AudioLDM 2 log-mel (frames, 64). Raises ValueError for unreadable or silent audio."""
    wave = load_audio(path)
    if len(wave) == 0 or float(np.max(np.abs(wave))) < 1e-6:
        raise ValueError(f"{path}: the audio is silent or empty")
    return mel_spectrogram(normalize_wav(centre_crop(wave, seconds)))


def load_image(path: str | os.PathLike) -> np.ndarray:
    """RGB uint8; bombs, truncated files and non-images raise ValueError naming the file."""
    from engine.catalog.images import load_rgb

    return load_rgb(path, max_side=1024)
