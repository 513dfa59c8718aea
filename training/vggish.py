"""VGGish in plain torch, for FAD: its exact input features and torchvggish's key layout.

Input features (``vggish_input.waveform_to_examples`` / ``mel_features``): 16 kHz mono; STFT
with a 400-sample (25 ms) periodic Hann window, hop 160 (10 ms), FFT 512, magnitude; 64 HTK
mel bands 125–7500 Hz (DC bin zeroed); ``log(mel + 0.01)``; non-overlapping 96-frame (0.96 s)
examples of (96, 64). Network: VGG (64, M, 128, M, 256, 256, M, 512, 512, M) then
4096 → 4096 → 128 with ReLUs; the flatten is NHWC, as in the TensorFlow original, which
torchvggish reproduces with two transposes. Weights: a torchvggish ``vggish-*.pth`` state dict
(``features.N.*``, ``embeddings.N.*``); the PCA post-processing is not applied (FAD as the
paper computes it).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

SAMPLE_RATE = 16000
WINDOW = 400
HOP = 160
FFT = 512
MEL_BANDS = 64
MEL_MIN, MEL_MAX = 125.0, 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96


def _hz_to_mel(hz):
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_matrix() -> np.ndarray:
    """(257, 64) weights, ``mel_features.spectrogram_to_mel_matrix``."""
    bins_hz = np.linspace(0.0, SAMPLE_RATE / 2, FFT // 2 + 1)
    bins_mel = _hz_to_mel(bins_hz)
    edges = np.linspace(_hz_to_mel(MEL_MIN), _hz_to_mel(MEL_MAX), MEL_BANDS + 2)
    weights = np.empty((len(bins_hz), MEL_BANDS))
    for i in range(MEL_BANDS):
        lower, center, upper = edges[i : i + 3]
        lo = (bins_mel - lower) / (center - lower)
        up = (upper - bins_mel) / (upper - center)
        weights[:, i] = np.maximum(0.0, np.minimum(lo, up))
    weights[0, :] = 0.0
    return weights


def waveform_to_examples(wave: np.ndarray) -> np.ndarray:
    """16 kHz mono → (n, 96, 64) log-mel examples (n may be 0 for clips under 0.985 s)."""
    w = np.asarray(wave, dtype=np.float64)
    frames = 1 + (len(w) - WINDOW) // HOP if len(w) >= WINDOW else 0
    if frames <= 0:
        return np.zeros((0, EXAMPLE_FRAMES, MEL_BANDS), np.float32)
    idx = np.arange(WINDOW)[None, :] + HOP * np.arange(frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi / WINDOW * np.arange(WINDOW))
    mag = np.abs(np.fft.rfft(w[idx] * window, FFT, axis=1))
    log_mel = np.log(mag @ mel_matrix() + LOG_OFFSET)
    n = len(log_mel) // EXAMPLE_FRAMES
    return log_mel[: n * EXAMPLE_FRAMES].reshape(n, EXAMPLE_FRAMES, MEL_BANDS).astype(np.float32)


class VGGish(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for v in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(v), 3, padding=1), nn.ReLU(inplace=True)]
                channels = int(v)
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 4 * 6, 4096),
            nn.ReLU(True),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Linear(4096, 128),
            nn.ReLU(True),
        )

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        x = self.features(examples[:, None])
        x = x.transpose(1, 3).transpose(1, 2).contiguous()  # NCHW → NHWC, as TensorFlow flattens
        return self.embeddings(x.view(x.size(0), -1))


class VGGishEmbedder:
    """Waveforms → VGGish embeddings, every 0.96-s example of every clip (FAD pools them)."""

    name = "vggish"

    def __init__(self, weights: str | os.PathLike | None = None, device: str = "cpu"):
        self.model = VGGish().eval().to(device)
        if weights is not None:
            self.model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.device = device

    def embed(self, waves: list[np.ndarray], sample_rate: int) -> np.ndarray:
        from engine.audio_utils import resample

        out = []
        with torch.no_grad():
            for wave in waves:
                w = (
                    resample(np.asarray(wave, np.float32), sample_rate, SAMPLE_RATE)
                    if sample_rate != SAMPLE_RATE
                    else wave
                )
                examples = waveform_to_examples(w)
                if len(examples):
                    out.append(self.model(torch.from_numpy(examples).to(self.device)).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 128), np.float32)
