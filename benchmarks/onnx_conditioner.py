"""ONNX conditioner (vision encoder + Image Aligner) at full size with random weights.

    python benchmarks/onnx_conditioner.py [--kind imagebind|clip] [--size full|tiny] [--batch 4] [--runs 3]

Builds the encoder at its real size (ImageBind-huge vision tower, 632M parameters; or CLIP
ViT-B/32's vision tower), saves and reloads it in the project's format, exports encoder +
aligner to ONNX (weights in external data past 2 GB), then prints: export time, files, the
onnxruntime provider that ran, fp32 parity with PyTorch, and the median latency per batch of
PyTorch and onnxruntime on this machine. Timings on a shared CPU are noisy; read them as rough.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.engines.diffusion.aligner import make_aligner
from engine.engines.diffusion.encoders import (
    load_vision_encoder,
    make_tiny_encoder,
    save_clip_encoder,
    save_imagebind_encoder,
)
from engine.engines.diffusion.imagebind_vision import ImageBindVision, ImageBindVisionConfig
from engine.engines.diffusion.onnx_export import OnnxImageConditioner, export_image_conditioner


def build_encoder(kind: str, size: str, folder: Path):
    if size == "tiny":
        return load_vision_encoder(make_tiny_encoder(kind, folder))
    if kind == "imagebind":
        save_imagebind_encoder(
            ImageBindVision(ImageBindVisionConfig()).init_random(torch.Generator().manual_seed(0)), folder
        )
    else:
        from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModelWithProjection

        torch.manual_seed(0)
        config = CLIPVisionConfig(  # openai/clip-vit-base-patch32's vision tower
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            image_size=224,
            patch_size=32,
            projection_dim=512,
        )
        save_clip_encoder(CLIPVisionModelWithProjection(config), CLIPImageProcessorPil(), folder)
    return load_vision_encoder(folder)


def median_seconds(fn, runs: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kind", choices=["imagebind", "clip"], default="imagebind")
    parser.add_argument("--size", choices=["full", "tiny"], default="full")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        encoder = build_encoder(args.kind, args.size, tmp / "encoder")
        aligner = make_aligner(args.kind, input_dim=encoder.dim).eval()
        params = sum(p.numel() for p in encoder.parameters()) / 1e6
        print(
            f"{args.kind} ({args.size}): encoder {params:.0f}M parameters, aligner {aligner.num_parameters() / 1e6:.1f}M"
        )

        started = time.perf_counter()
        folder = export_image_conditioner(encoder, aligner, tmp / "onnx")
        print(
            f"export: {time.perf_counter() - started:.1f} s; files: "
            + ", ".join(f"{p.name} {p.stat().st_size / 1e6:.0f} MB" for p in sorted(folder.iterdir()))
        )
        conditioner = OnnxImageConditioner(folder)
        print(f"onnxruntime provider: {conditioner.provider}")

        pixels = torch.randn(args.batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            embeds = encoder.embed(pixels)
            tokens = aligner(embeds)
        ort_tokens, ort_embeds = conditioner.run(pixels.numpy())
        token_diff = float(np.abs(ort_tokens - tokens.numpy()).max())
        embed_diff = float(np.abs(ort_embeds - embeds.numpy()).max())
        print(
            f"parity (fp32, batch {args.batch}): tokens max |diff| {token_diff:.2e}, embeddings {embed_diff:.2e}"
        )

        def torch_run():
            with torch.no_grad():
                aligner(encoder.embed(pixels))

        torch_s = median_seconds(torch_run, args.runs)
        ort_s = median_seconds(lambda: conditioner.run(pixels.numpy()), args.runs)
        print(
            f"latency per batch of {args.batch} (median of {args.runs}, {torch.get_num_threads()} threads): "
            f"PyTorch {torch_s:.3f} s, onnxruntime {ort_s:.3f} s"
        )
        return 0 if max(token_diff, embed_diff) <= 1e-4 else 1


if __name__ == "__main__":
    raise SystemExit(main())
