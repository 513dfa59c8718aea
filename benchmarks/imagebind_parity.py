"""Proves the project's ImageBind vision or audio tower equal to ImageBind's own model (random weights).

    python benchmarks/imagebind_parity.py [--modality vision|audio] [--size tiny|huge]
        [--imagebind-src DIR] [--torchaudio-src DIR] [--device cpu|cuda] [--onnx]

The reference is the ``imagebind`` package's ``ImageBindModel`` (``imagebind_huge()`` for
``--size huge``), randomly initialised and then perturbed so no LayerNorm stays at 1/0. Its
whole state dict is saved as an ``imagebind_huge.pth``-style checkpoint and converted with
``convert_imagebind_checkpoint`` — the path a real checkpoint takes — then both models embed
the demo paintings and random pixels in fp32 (TF32 off) and the script prints the largest
difference. With ``--onnx`` the converted tower is also exported with an aligner and run in
onnxruntime. Where torchvision is installed, the preprocessing is compared with
``imagebind.data.load_and_transform_vision_data`` too.

``--modality audio`` does the same for the audio tower: the checkpoint's audio keys are read
by ``imagebind_audio.audio_tower_from_checkpoint`` (the engine's scorer's path) and both
models embed the same log-mel inputs, (B, 3 clips, 1, 128, 204) as ImageBind's data loader
makes them: the project's preprocessing of a 10-s test signal (a chirp over noise) and
random log-mels. The preprocessing is compared with ImageBind's ``waveform2melspec``
(torchaudio's Kaldi fbank) where ``imagebind.data`` imports, or with ``--torchaudio-src`` (the
folder holding ``torchaudio/``, e.g. ``pip install --no-deps --target DIR torchaudio``: only its
pure-torch ``compliance/kaldi.py`` is loaded, so a wheel built for another torch serves), and
then the whole path, waveform to embedding, is compared too.

Where the package is installed (a CUDA machine with torchvision), it is imported as is.
Elsewhere pass ``--imagebind-src`` = a checkout of facebookresearch/ImageBind: its model
modules are imported without the package ``__init__`` (which needs torchaudio, pytorchvideo,
torchvision for data loading), and third-party modules the *model* code imports but that
are not installed are replaced by minimal stand-ins, listed in the output:
``timm.layers`` (``DropPath``: identity in eval mode; ``trunc_normal_``: init only),
``einops.rearrange`` (only the two transposes ImageBind's trunks use), and ``ftfy``,
``regex``, ``iopath`` (text tokenizer only, never called here).

Exit status 0 when every difference is within --tolerance (default 1e-4), 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Imported before any stand-in module is installed: diffusers probes for timm at import time.
from engine.engines.diffusion.aligner import make_aligner
from engine.engines.diffusion.encoders import (
    convert_imagebind_checkpoint,
    load_vision_encoder,
    read_imagebind_checkpoint,
)
from engine.engines.diffusion.imagebind_audio import (
    MEL_MEAN,
    MEL_STD,
    SAMPLE_RATE,
    audio_clips,
    audio_tower_from_checkpoint,
    clip_starts,
)
from engine.engines.diffusion.onnx_export import OnnxImageConditioner, export_image_conditioner
from engine.engines.diffusion.preprocessing import IMAGEBIND_SPEC, preprocess

DEMO = ROOT / "content" / "demo"


# --- importing the reference ---------------------------------------------------------------


def _stand_in_modules() -> list[str]:
    """Install stand-ins for third-party modules ImageBind's model code imports but lacks here."""
    installed = []

    def missing(name: str) -> bool:
        try:
            importlib.import_module(name)
            return False
        except ImportError:
            return True

    if missing("timm.layers"):
        timm = types.ModuleType("timm")
        layers = types.ModuleType("timm.layers")

        class DropPath(torch.nn.Module):  # stochastic depth: the identity in eval mode
            def __init__(self, drop_prob: float = 0.0):
                super().__init__()
                self.drop_prob = drop_prob

            def forward(self, x):
                if self.training and self.drop_prob > 0:
                    raise RuntimeError("stand-in DropPath is for eval only")
                return x

        layers.DropPath = DropPath
        layers.trunc_normal_ = torch.nn.init.trunc_normal_
        timm.layers = layers
        sys.modules.update({"timm": timm, "timm.layers": layers})
        installed.append("timm.layers (DropPath identity in eval, trunc_normal_)")
    if missing("einops"):
        einops = types.ModuleType("einops")

        def rearrange(x, pattern: str, **kwargs):
            if pattern.replace(" ", "") in ("bld->lbd", "lbd->bld"):
                return x.transpose(0, 1)
            raise NotImplementedError(f"stand-in einops.rearrange does not know {pattern!r}")

        einops.rearrange = rearrange
        sys.modules["einops"] = einops
        installed.append("einops.rearrange (b l d <-> l b d transposes only)")
    for name in ("ftfy", "regex"):
        if missing(name):
            sys.modules[name] = types.ModuleType(name)
            installed.append(f"{name} (text tokenizer only, unused)")
    if missing("iopath.common.file_io"):
        for name in ("iopath", "iopath.common", "iopath.common.file_io"):
            sys.modules[name] = types.ModuleType(name)
        sys.modules["iopath.common.file_io"].g_pathmgr = None
        installed.append("iopath (text tokenizer only, unused)")
    return installed


def import_imagebind(source: Path | None):
    """imagebind.models.imagebind_model, from the installed package or a source checkout."""
    try:
        from imagebind.models import imagebind_model

        return imagebind_model, "installed package", []
    except ImportError as exc:
        if source is None:
            raise SystemExit(
                f"imagebind is not importable ({exc}); install it (it needs torchvision) or pass "
                "--imagebind-src with a checkout of facebookresearch/ImageBind"
            ) from exc
    package_dir = source / "imagebind"
    if not (package_dir / "models" / "imagebind_model.py").is_file():
        raise SystemExit(f"{source}: not an ImageBind checkout (no imagebind/models/imagebind_model.py)")
    stand_ins = _stand_in_modules()
    # Namespace modules in place of imagebind/__init__.py, which imports the data pipeline.
    for name, path in (("imagebind", package_dir), ("imagebind.models", package_dir / "models")):
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module
    return importlib.import_module("imagebind.models.imagebind_model"), f"source {source}", stand_ins


def build_reference(imagebind_model, size: str, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    if size == "huge":
        model = imagebind_model.imagebind_huge(pretrained=False)
    else:
        small = dict(embed_dim=64, num_blocks=1, num_heads=4)
        model = imagebind_model.ImageBindModel(
            vision_embed_dim=64,
            vision_num_blocks=3,
            vision_num_heads=4,
            out_embed_dim=1024,
            **{f"{m}_{k}": v for m in ("text", "audio", "depth", "thermal", "imu") for k, v in small.items()},
        )
    with torch.no_grad():
        for param in model.parameters():  # move LayerNorms off 1/0 and biases off 0
            param.add_(0.02 * torch.randn_like(param))
    return model.eval()


# --- the comparison ------------------------------------------------------------------------


def demo_images(limit: int) -> tuple[list[Path], list[np.ndarray]]:
    from PIL import Image

    paths = sorted(DEMO.glob("*.png"))[:limit]
    return paths, [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def compare_preprocessing(paths: list[Path], images: list[np.ndarray]) -> float | None:
    try:
        from imagebind import data
        from torchvision import transforms  # noqa: F401
    except ImportError:
        return None
    theirs = data.load_and_transform_vision_data([str(p) for p in paths], "cpu").numpy()
    return float(np.abs(theirs - preprocess(images, IMAGEBIND_SPEC)).max())


def report(name: str, ours: torch.Tensor, theirs: torch.Tensor) -> float:
    diff = float((ours - theirs).abs().max())
    cosine = float(torch.nn.functional.cosine_similarity(ours, theirs, dim=-1).min())
    print(f"  {name:<28} max |diff| {diff:.3e}   min cosine {cosine:.8f}")
    return diff


def compare_vision(reference: torch.nn.Module, args: argparse.Namespace, tmp: Path) -> float:
    checkpoint = save_checkpoint(reference, tmp)
    heads = reference.modality_trunks["vision"].blocks[0].attn.num_heads
    started = time.perf_counter()
    encoder = load_vision_encoder(convert_imagebind_checkpoint(checkpoint, tmp / "encoder", heads=heads))
    print(
        f"converted {checkpoint.stat().st_size / 1e6:.0f} MB checkpoint in {time.perf_counter() - started:.1f} s: {encoder.model.config}"
    )
    checkpoint.unlink()

    reference.to(args.device)
    encoder.to(args.device)
    paths, images = demo_images(args.images)
    generator = torch.Generator().manual_seed(args.seed)
    inputs = {
        f"{len(images)} demo paintings": encoder.preprocess(images),
        "2 random pixel batches": torch.randn(2, 3, 224, 224, generator=generator),
    }
    worst = 0.0
    pre = compare_preprocessing(paths, images)
    if pre is None:
        print("preprocessing: not compared (imagebind.data needs torchvision, absent here)")
    else:
        print(f"preprocessing vs imagebind.data.load_and_transform_vision_data: max |diff| {pre:.3e}")
        worst = max(worst, pre)
    print("embeddings (ours vs ImageBindModel, fp32):")
    for name, pixels in inputs.items():
        pixels = pixels.to(args.device)
        with torch.no_grad():
            t0 = time.perf_counter()
            theirs = reference({"vision": pixels})["vision"]
            t1 = time.perf_counter()
            ours = encoder.embed(pixels)
            t2 = time.perf_counter()
        worst = max(worst, report(name, ours.cpu(), theirs.cpu()))
        print(f"  {'':<28} time: reference {t1 - t0:.2f} s, ours {t2 - t1:.2f} s")

    if args.onnx:
        encoder.cpu()
        aligner = make_aligner("imagebind").eval()
        folder = export_image_conditioner(encoder, aligner, tmp / "onnx")
        conditioner = OnnxImageConditioner(folder)
        pixels = inputs[f"{len(images)} demo paintings"]
        _, embeds = conditioner.run(pixels.numpy())
        with torch.no_grad():
            theirs = reference.cpu()({"vision": pixels})["vision"]
        print(f"ONNX ({conditioner.provider}):")
        worst = max(worst, report("onnxruntime vs ImageBindModel", torch.from_numpy(embeds), theirs))
    return worst


def chirp_signal(seconds: float = 10.0, seed: int = 0) -> np.ndarray:
    """A 16-kHz chirp (100 Hz to 6 kHz) over quiet noise: energy in every mel band over time."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    chirp = np.sin(2 * np.pi * (100 * t + (6000 - 100) / (2 * seconds) * t**2))
    return 0.5 * chirp + 0.05 * np.random.default_rng(seed).standard_normal(t.size)


def import_waveform2melspec(torchaudio_src: Path | None) -> tuple[object | None, str]:
    """ImageBind's ``imagebind.data.waveform2melspec`` (torchaudio's Kaldi fbank), if it can run.

    Installed, it is imported as is. From an ImageBind checkout it needs torchaudio: with
    ``--torchaudio-src`` (the folder holding ``torchaudio/``, e.g. an unpacked wheel of another
    torch build) only its pure-torch ``compliance/kaldi.py`` is loaded, and the video and image
    libraries ``imagebind.data`` imports for its other loaders get empty stand-ins.
    """
    try:
        from imagebind.data import waveform2melspec

        return waveform2melspec, "imagebind.data as installed"
    except ImportError:
        pass
    if torchaudio_src is None:
        return None, "imagebind.data needs torchaudio (absent here; see --torchaudio-src)"
    kaldi = torchaudio_src / "torchaudio" / "compliance" / "kaldi.py"
    if not kaldi.is_file():
        raise SystemExit(f"{torchaudio_src}: no torchaudio/compliance/kaldi.py")
    for name, path in (("torchaudio", kaldi.parent.parent), ("torchaudio.compliance", kaldi.parent)):
        module = types.ModuleType(name)
        module.__path__ = [str(path)]
        sys.modules[name] = module
    sys.modules["torchaudio"].compliance = sys.modules["torchaudio.compliance"]  # type: ignore[attr-defined]
    importlib.import_module("torchaudio.compliance.kaldi")
    for name in (
        "pkg_resources",
        "pytorchvideo",
        "pytorchvideo.data",
        "pytorchvideo.data.clip_sampling",
        "pytorchvideo.data.encoded_video",
        "torchvision",
    ):
        sys.modules.setdefault(name, types.ModuleType(name))
    stand_ins = {
        "pytorchvideo": {"transforms": None},
        "pytorchvideo.data.clip_sampling": {"ConstantClipsPerVideoSampler": None},
        "pytorchvideo.data.encoded_video": {"EncodedVideo": None},
        "torchvision": {"transforms": None},
    }
    for name, attributes in stand_ins.items():
        for attribute, value in attributes.items():
            if not hasattr(sys.modules[name], attribute):
                setattr(sys.modules[name], attribute, value)
    from imagebind.data import waveform2melspec

    return waveform2melspec, f"imagebind.data with torchaudio's kaldi.py from {torchaudio_src}"


def imagebind_mels(wave: np.ndarray, torchaudio_src: Path | None) -> torch.Tensor | None:
    """(1, 3, 1, 128, 204) normalised log-mels of ``wave`` by ``imagebind.data.waveform2melspec``
    (at our clip starts: pytorchvideo's clip sampler is not here), or None where it cannot run."""
    waveform2melspec, origin = import_waveform2melspec(torchaudio_src)
    if waveform2melspec is None:
        print(f"preprocessing: not compared ({origin})")
        return None
    print(f"preprocessing: ImageBind's from {origin}")
    clips = []
    for start in clip_starts(len(wave) / SAMPLE_RATE):
        clip = wave[int(start * SAMPLE_RATE) : int((start + 2.0) * SAMPLE_RATE)]
        clips.append(
            (waveform2melspec(torch.from_numpy(clip).float()[None], SAMPLE_RATE, 128, 204) - MEL_MEAN)
            / MEL_STD
        )
    return torch.stack(clips)[None]


def compare_audio(reference: torch.nn.Module, args: argparse.Namespace, tmp: Path) -> float:
    checkpoint = save_checkpoint(reference, tmp)
    heads = reference.modality_trunks["audio"].blocks[0].attn.num_heads
    started = time.perf_counter()
    tower = audio_tower_from_checkpoint(read_imagebind_checkpoint(checkpoint), checkpoint, heads=heads)
    print(
        f"read the audio tower from a {checkpoint.stat().st_size / 1e6:.0f} MB checkpoint in "
        f"{time.perf_counter() - started:.1f} s: {tower.config}"
    )
    reference.to(args.device)
    tower.to(args.device)
    wave = chirp_signal(seed=args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    inputs = {
        "10-s chirp (our fbank)": audio_clips(wave, tower.config)[None],
        "2 random log-mel sets": torch.randn(2, 3, 1, 128, 204, generator=generator),
    }
    worst = 0.0
    theirs_mel = imagebind_mels(wave, args.torchaudio_src)
    if theirs_mel is not None:
        mel_diff = float((theirs_mel - inputs["10-s chirp (our fbank)"]).abs().max())
        # torchaudio works in float32 (its mel banks too), ours in float64: compared on their scale
        print(
            f"  normalised log-mel, ours vs ImageBind's: max |diff| {mel_diff:.3e} (tolerance {args.mel_tolerance:g})"
        )
        if mel_diff > args.mel_tolerance:
            worst = float("inf")
        inputs["10-s chirp (their fbank)"] = theirs_mel
    print("embeddings (ours vs ImageBindModel, fp32, 3 clips averaged):")
    for name, mel in inputs.items():
        mel = mel.to(args.device)
        with torch.no_grad():
            t0 = time.perf_counter()
            theirs = reference({"audio": mel})["audio"]
            t1 = time.perf_counter()
            ours = tower(mel)
            t2 = time.perf_counter()
        worst = max(worst, report(name, ours.cpu(), theirs.cpu()))
        print(f"  {'':<28} time: reference {t1 - t0:.2f} s, ours {t2 - t1:.2f} s")
    if theirs_mel is not None:
        with torch.no_grad():
            ours = tower(inputs["10-s chirp (our fbank)"].to(args.device))
            theirs = reference({"audio": theirs_mel.to(args.device)})["audio"]
        print("end to end (our preprocessing + tower vs ImageBind's, same waveform):")
        worst = max(worst, report("10-s chirp", ours.cpu(), theirs.cpu()))
    checkpoint.unlink()
    return worst


def save_checkpoint(reference: torch.nn.Module, tmp: Path) -> Path:
    """The whole model's state dict, as ``imagebind_huge.pth`` holds it."""
    checkpoint = tmp / "imagebind_huge.pth"
    torch.save(reference.state_dict(), checkpoint)
    return checkpoint


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modality", choices=["vision", "audio"], default="vision")
    parser.add_argument("--size", choices=["tiny", "huge"], default="huge")
    parser.add_argument("--imagebind-src", type=Path, default=None)
    parser.add_argument(
        "--torchaudio-src", type=Path, default=None, help="folder holding torchaudio/ (audio preprocessing)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=4, help="demo paintings to embed (vision)")
    parser.add_argument("--tolerance", type=float, default=1e-4)
    parser.add_argument("--mel-tolerance", type=float, default=1e-3, help="normalised log-mel (audio)")
    parser.add_argument("--onnx", action="store_true", help="also compare the ONNX export (vision)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.onnx and args.modality != "vision":
        parser.error("--onnx exports the image conditioner: use it with --modality vision")

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    imagebind_model, origin, stand_ins = import_imagebind(args.imagebind_src)
    print(f"reference: ImageBindModel from {origin}, size {args.size}, {args.modality}, device {args.device}")
    for stand_in in stand_ins:
        print(f"  stand-in module: {stand_in}")

    started = time.perf_counter()
    reference = build_reference(imagebind_model, args.size, args.seed)
    print(f"built the reference in {time.perf_counter() - started:.1f} s")
    compare = compare_audio if args.modality == "audio" else compare_vision
    with tempfile.TemporaryDirectory() as tmp:
        worst = compare(reference, args, Path(tmp))

    verdict = "PASS" if worst <= args.tolerance else "FAIL"
    print(f"{verdict}: largest difference {worst:.3e} (tolerance {args.tolerance:g})")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
