"""ImageBind's audio tower (1024-d, the space of the vision tower) without the ``imagebind`` package.

Built like ``imagebind_vision``: its ``state_dict`` keys are exactly the audio keys of
``imagebind_huge.pth``, so a real checkpoint loads with no renaming (shapes: huge):

=============================================================  ===========================
modality_preprocessors.audio.cls_token                         (1, 1, 768)
modality_preprocessors.audio.rgbt_stem.proj.weight             (768, 1, 16, 16)  Conv2d stride 10, no bias
modality_preprocessors.audio.rgbt_stem.norm_layer.{weight,bias} (768,)  LayerNorm eps 1e-5
modality_preprocessors.audio.pos_embedding_helper.pos_embed    (1, 229, 768)  12×19 patches + cls
modality_trunks.audio.blocks.{i}.attn.in_proj_{weight,bias}    (2304, 768), (2304,)
modality_trunks.audio.blocks.{i}.attn.bias_k / bias_v          (1, 1, 768)  add_bias_kv=True
modality_trunks.audio.blocks.{i}.attn.out_proj.{weight,bias}
modality_trunks.audio.blocks.{i}.norm_1 / norm_2 / mlp.fc1 / mlp.fc2
modality_heads.audio.0.{weight,bias}                           (768,)  LayerNorm eps 1e-6
modality_heads.audio.2.weight                                  (1024, 768)  Linear, no bias
modality_postprocessors.audio.1.log_logit_scale                ()  log(20), a buffer
=============================================================  ===========================

(i = 0..11; no pre-transformer LayerNorm for audio.) The computation follows ImageBind's
``imagebind_model.py``: the (1, 128, 204) log-mel clip is cut into 16×16 patches with stride
10 by the Conv2d, LayerNorm-ed, a cls token is prepended and position embeddings added; 12
pre-norm blocks whose attention has ``nn.MultiheadAttention``'s ``add_bias_kv`` (one learned
key and value appended to every sequence); the LayerNorm-ed cls token through a bias-free
Linear; L2-normalised and multiplied by 20. An input of several clips (B, S, 1, 128, 204) is
embedded clip by clip and the S embeddings are averaged, as ``ImageBindModel.forward`` does.
Equal to Meta's ``ImageBindModel`` bit for bit at full size with random weights
(``benchmarks/imagebind_parity.py --modality audio --size huge``; docs/model.md).

Preprocessing (``imagebind.data.load_and_transform_audio_data``): 16 kHz mono; three 2-s
clips at evenly spaced starts (pytorchvideo's ``ConstantClipsPerVideoSampler``); each clip
minus its mean, Kaldi fbank (``torchaudio.compliance.kaldi.fbank``: 25-ms frames every 10 ms,
DC removed per frame, pre-emphasis 0.97, symmetric Hann window, FFT 512, power, 128 Kaldi mel
bins 20–8000 Hz, log with a float32-epsilon floor), transposed, zero-padded or cut to 204
frames, then normalised with mean −4.268 and std 9.138. Rewritten in numpy because torchaudio
is not a dependency; equal to ImageBind's ``waveform2melspec`` within torchaudio's float32
rounding (2.7e-4 after normalisation; benchmarks/imagebind_parity.py, docs/model.md).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import CheckpointError
from .imagebind_vision import _Mlp, _Normalize, _SelectCls

PREFIXES = (
    "modality_preprocessors.audio.",
    "modality_trunks.audio.",
    "modality_heads.audio.",
    "modality_postprocessors.audio.",
)
SAMPLE_RATE = 16000
MEL_MEAN, MEL_STD = -4.268, 9.138


@dataclass(frozen=True)
class ImageBindAudioConfig:
    """Sizes of the audio tower; the defaults are imagebind_huge's."""

    mel_bins: int = 128
    target_length: int = 204
    kernel_size: int = 16
    stride: int = 10
    width: int = 768
    layers: int = 12
    heads: int = 12
    mlp_ratio: int = 4
    embed_dim: int = 1024
    logit_scale: float = 20.0

    def __post_init__(self) -> None:
        for key, value in asdict(self).items():
            if key != "logit_scale" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"ImageBind audio config {key}={value!r}: must be a positive integer")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")

    @property
    def grid(self) -> tuple[int, int]:
        return (
            (self.mel_bins - self.kernel_size) // self.stride + 1,
            (self.target_length - self.kernel_size) // self.stride + 1,
        )


class _Stem(nn.Module):
    def __init__(self, c: ImageBindAudioConfig):
        super().__init__()
        # ImageBind's PatchEmbedGeneric keeps a one-layer stem bare (``proj.weight``); the
        # vision stem has two layers, so there it is a Sequential (``proj.1.weight``).
        self.proj = nn.Conv2d(1, c.width, c.kernel_size, stride=c.stride, bias=False)
        self.norm_layer = nn.LayerNorm(c.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_layer(self.proj(x).flatten(2).transpose(1, 2))


class _PosEmbedding(nn.Module):
    def __init__(self, c: ImageBindAudioConfig):
        super().__init__()
        rows, cols = c.grid
        self.pos_embed = nn.Parameter(torch.zeros(1, rows * cols + 1, c.width))


class _Preprocessor(nn.Module):
    def __init__(self, c: ImageBindAudioConfig):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.width))
        self.rgbt_stem = _Stem(c)
        self.pos_embedding_helper = _PosEmbedding(c)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        tokens = self.rgbt_stem(mel)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        return torch.cat([cls, tokens], dim=1) + self.pos_embedding_helper.pos_embed


class _BiasKVAttention(nn.Module):
    """``nn.MultiheadAttention(add_bias_kv=True)`` with its parameter names, batch-first."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.bias_k = nn.Parameter(torch.zeros(1, 1, width))
        self.bias_v = nn.Parameter(torch.zeros(1, 1, width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        # the learned key and value are appended after the projection, as MultiheadAttention does
        k = torch.cat([k, self.bias_k.expand(batch, 1, width)], dim=1)
        v = torch.cat([v, self.bias_v.expand(batch, 1, width)], dim=1)
        head = width // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, -1, self.heads, head).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(q), split(k), split(v))
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, width))


class _Block(nn.Module):
    def __init__(self, c: ImageBindAudioConfig):
        super().__init__()
        self.attn = _BiasKVAttention(c.width, c.heads)
        self.norm_1 = nn.LayerNorm(c.width, eps=1e-6)
        self.mlp = _Mlp(c.width, c.mlp_ratio * c.width)
        self.norm_2 = nn.LayerNorm(c.width, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm_1(x))  # drop path (0.1) is the identity at inference
        return x + self.mlp(self.norm_2(x))


class _Trunk(nn.Module):
    def __init__(self, c: ImageBindAudioConfig):
        super().__init__()
        self.blocks = nn.Sequential(*[_Block(c) for _ in range(c.layers)])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.blocks(tokens)


class _LogitScale(nn.Module):
    log_logit_scale: torch.Tensor

    def __init__(self, scale: float):
        super().__init__()
        self.register_buffer("log_logit_scale", torch.tensor(math.log(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.log_logit_scale.exp() * x


class ImageBindAudio(nn.Module):
    """Log-mel clips (B, 1, 128, 204) or (B, S, 1, 128, 204) → embeddings (B, 1024)."""

    def __init__(self, config: ImageBindAudioConfig | None = None):
        super().__init__()
        self.config = config or ImageBindAudioConfig()
        c = self.config
        self.modality_preprocessors = nn.ModuleDict({"audio": _Preprocessor(c)})
        self.modality_trunks = nn.ModuleDict({"audio": _Trunk(c)})
        self.modality_heads = nn.ModuleDict(
            {
                "audio": nn.Sequential(
                    nn.LayerNorm(c.width, eps=1e-6), _SelectCls(), nn.Linear(c.width, c.embed_dim, bias=False)
                )
            }
        )
        self.modality_postprocessors = nn.ModuleDict(
            {"audio": nn.Sequential(_Normalize(), _LogitScale(c.logit_scale))}
        )

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        clips = mel.ndim == 5
        if clips:
            batch, count = mel.shape[:2]
            mel = mel.reshape(batch * count, *mel.shape[2:])
        x = self.modality_preprocessors["audio"](mel)
        x = self.modality_trunks["audio"](x)
        x = self.modality_postprocessors["audio"](self.modality_heads["audio"](x))
        return x.reshape(batch, count, -1).mean(dim=1) if clips else x

    @torch.no_grad()
    def init_random(self, generator: torch.Generator | None = None) -> ImageBindAudio:
        """Random weights with sensible scales, for tiny test models."""
        scale = self.config.width**-0.5
        for name, p in self.named_parameters():
            if p.ndim >= 2 or name.endswith(("bias_k", "bias_v", "cls_token")):
                p.normal_(generator=generator).mul_(scale)
        return self


def audio_state_dict(checkpoint: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The audio tower's tensors out of a whole-model ImageBind state dict."""
    return {key: value for key, value in checkpoint.items() if key.startswith(PREFIXES)}


def audio_config_from_state_dict(state: dict[str, torch.Tensor], heads: int = 12) -> ImageBindAudioConfig:
    """Infer the tower's sizes from its tensors (heads cannot be inferred; ImageBind huge uses 12)."""
    conv = state["modality_preprocessors.audio.rgbt_stem.proj.weight"]
    patches = state["modality_preprocessors.audio.pos_embedding_helper.pos_embed"].shape[1] - 1
    width, _, kernel, _ = conv.shape
    layers = 1 + max(
        int(key.split(".")[3]) for key in state if key.startswith("modality_trunks.audio.blocks.")
    )
    sizes = dict(
        kernel_size=kernel,
        width=width,
        layers=layers,
        heads=heads,
        mlp_ratio=state["modality_trunks.audio.blocks.0.mlp.fc1.weight"].shape[0] // width,
        embed_dim=state["modality_heads.audio.2.weight"].shape[0],
    )
    # The stride is not in any shape: it is the one whose patch grid has the tensors' patch count.
    for stride in range(1, kernel + 1):
        config = ImageBindAudioConfig(stride=stride, **sizes)
        if config.grid[0] * config.grid[1] == patches:
            return config
    raise ValueError(f"no stride gives {patches} patches of {kernel}x{kernel} on a 128x204 log-mel")


def audio_tower_from_checkpoint(
    state: dict[str, torch.Tensor], checkpoint: Path, heads: int = 12
) -> ImageBindAudio:
    """The audio tower out of a whole-model ImageBind state dict read from ``checkpoint``."""
    audio = audio_state_dict(state)
    if not audio:
        raise CheckpointError(f"{checkpoint}: no ImageBind audio tensors (modality_*.audio.*) found")
    try:
        model = ImageBindAudio(audio_config_from_state_dict(audio, heads=heads))
        model.load_state_dict(audio, strict=True)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"{checkpoint}: ImageBind audio tensors do not form an audio tower: {exc}"
        ) from exc
    return model.eval().requires_grad_(False)


# --------------------------------------------------------------------------- preprocessing


def clip_starts(duration: float, clip_duration: float = 2.0, clips: int = 3) -> list[float]:
    """pytorchvideo's ConstantClipsPerVideoSampler: evenly spaced starts, the last at the end."""
    step = max(duration - clip_duration, 0.0) / max(clips - 1, 1)
    return [step * i for i in range(clips)]


def _kaldi_mel_banks(bins: int, padded: int, rate: int, low: float, high: float) -> np.ndarray:
    def mel(f):
        return 1127.0 * np.log(1.0 + np.asarray(f, np.float64) / 700.0)

    high = high if high > 0 else high + rate / 2
    lo, hi = mel(low), mel(high)
    delta = (hi - lo) / (bins + 1)
    b = np.arange(bins)[:, None]
    left, center, right = lo + b * delta, lo + (b + 1) * delta, lo + (b + 2) * delta
    m = mel(rate / padded * np.arange(padded // 2))[None, :]
    banks = np.maximum(0.0, np.minimum((m - left) / (center - left), (right - m) / (right - center)))
    return np.pad(banks, ((0, 0), (0, 1)))  # the Nyquist bin gets no weight, as Kaldi


def kaldi_fbank(wave: np.ndarray, bins: int = 128, rate: int = SAMPLE_RATE) -> np.ndarray:
    """(frames, bins) log-mel, ``torchaudio.compliance.kaldi.fbank`` with ImageBind's arguments."""
    size, shift, padded = int(rate * 0.025), int(rate * 0.010), 512
    w = np.asarray(wave, np.float64)
    if len(w) < size:
        return np.zeros((0, bins))
    frames = 1 + (len(w) - size) // shift
    x = w[np.arange(size)[None, :] + shift * np.arange(frames)[:, None]]
    x = x - x.mean(axis=1, keepdims=True)
    x = x - 0.97 * np.concatenate([x[:, :1], x[:, :-1]], axis=1)
    x = x * np.hanning(size)  # symmetric, as torch.hann_window(periodic=False)
    power = np.abs(np.fft.rfft(x, padded, axis=1)) ** 2
    mel = power @ _kaldi_mel_banks(bins, padded, rate, 20.0, 0.0).T
    return np.log(np.maximum(mel, np.finfo(np.float32).eps))


def audio_clips(wave: np.ndarray, cfg: ImageBindAudioConfig | None = None) -> torch.Tensor:
    """16 kHz mono → (3, 1, 128, 204) normalised log-mel clips, as ImageBind's data loader."""
    c = cfg or ImageBindAudioConfig()
    w = np.asarray(wave, np.float64)
    out = []
    for start in clip_starts(len(w) / SAMPLE_RATE):
        clip = w[int(start * SAMPLE_RATE) : int((start + 2.0) * SAMPLE_RATE)]
        fbank = kaldi_fbank(clip - clip.mean(), c.mel_bins).T
        if fbank.shape[1] < c.target_length:
            fbank = np.pad(fbank, ((0, 0), (0, c.target_length - fbank.shape[1])))
        fbank = fbank[:, : c.target_length]
        out.append((fbank[None] - MEL_MEAN) / MEL_STD)
    return torch.from_numpy(np.stack(out)).float()


# --------------------------------------------------------------------------- on disk

CONFIG_FILE = "audio_config.json"
WEIGHTS_FILE = "model.safetensors"


def save_audio_tower(model: ImageBindAudio, folder) -> None:
    """``audio_config.json`` + ``model.safetensors`` (ImageBind's own keys)."""
    import json

    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(json.dumps(asdict(model.config), indent=2) + "\n")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / WEIGHTS_FILE))


def load_audio_tower(path) -> ImageBindAudio:
    """From a folder made by ``save_audio_tower``, or from ``imagebind_huge.pth`` itself."""
    import json

    path = Path(path)
    if path.is_dir():
        from safetensors.torch import load_file

        config = ImageBindAudioConfig(**json.loads((path / CONFIG_FILE).read_text()))
        state = load_file(str(path / WEIGHTS_FILE))
    else:
        from .encoders import read_imagebind_checkpoint

        return audio_tower_from_checkpoint(read_imagebind_checkpoint(path), path)
    model = ImageBindAudio(config)
    model.load_state_dict(state)
    return model.eval().requires_grad_(False)


# --------------------------------------------------------------------------- ranking candidates


class ImageBindScorer:
    """The engine's ``Scorer``: cosine of ImageBind's image and audio embeddings, as the authors'
    code keeps the best of its candidates. ``vision`` must be an ImageBind vision encoder
    (``encoders.ImageBindVisionEncoder``, the bundle's own when it is ImageBind): the audio tower
    lives in ImageBind's joint space, CLIP's embeddings do not."""

    name = "imagebind-similarity"

    def __init__(self, vision, audio: ImageBindAudio, device: str = "cpu"):
        if getattr(vision, "kind", None) != "imagebind":
            raise ValueError("ImageBindScorer needs an ImageBind vision encoder (the bundle's is not one)")
        self.vision = vision
        self.audio = audio.to(device).eval()
        self.device = device

    def __call__(self, images, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        from engine.audio_utils import resample

        image_embeds = F.normalize(self.vision.encode(list(images)).float(), dim=-1).cpu()
        scores = []
        with torch.no_grad():
            for image_embed, wave in zip(image_embeds, np.asarray(audio), strict=True):
                wave16 = resample(wave, sample_rate, SAMPLE_RATE) if sample_rate != SAMPLE_RATE else wave
                audio_embed = self.audio(audio_clips(wave16, self.audio.config)[None].to(self.device))[0]
                scores.append(float(F.cosine_similarity(image_embed, audio_embed.float().cpu(), dim=0)))
        return np.asarray(scores)


def load_imagebind_scorer(checkpoint: str | Path, encoder, device: str = "cpu") -> ImageBindScorer:
    """The engine's scorer from ``imagebind_huge.pth`` (or a checkpoint in its key layout).

    The audio tower always comes from the checkpoint. The image side is the bundle's own
    ``encoder`` when it is ImageBind's vision tower (no second copy in GPU memory), otherwise
    (a CLIP bundle) the checkpoint's vision tower: both towers must share ImageBind's space.
    """
    from .encoders import ImageBindVisionEncoder, imagebind_vision_from_checkpoint, read_imagebind_checkpoint

    checkpoint = Path(checkpoint)
    state = read_imagebind_checkpoint(checkpoint)
    audio = audio_tower_from_checkpoint(state, checkpoint)
    if getattr(encoder, "kind", None) != "imagebind":
        encoder = ImageBindVisionEncoder(imagebind_vision_from_checkpoint(state, checkpoint)).to(device)
    if encoder.dim != audio.config.embed_dim:
        raise CheckpointError(
            f"{checkpoint}: its audio embeddings have {audio.config.embed_dim} dimensions, the "
            f"ImageBind vision encoder's {encoder.dim}: they are not one ImageBind model"
        )
    return ImageBindScorer(encoder, audio, device=device)
