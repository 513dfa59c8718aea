"""Commands for the model parts: convert upstream encoder checkpoints, export/run the ONNX conditioner.

They form the click group ``model_parts``; the ``art2mus models`` group adds them as its own
subcommands. Stand-alone: ``python -m engine.engines.diffusion.parts_cli --help``.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

_DEMO = Path(__file__).resolve().parents[3] / "content" / "demo"


def _load_images(paths: tuple[str, ...]):
    import numpy as np
    from PIL import Image

    files = [Path(p) for p in paths] or sorted(_DEMO.glob("*.png"))[:4]
    images = []
    for path in files:
        try:
            with Image.open(path) as image:
                images.append(np.asarray(image.convert("RGB")))
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"{path}: not a readable image: {exc}") from None
    return files, images


def _fail_on_checkpoint_errors(func):
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from .checkpoints import CheckpointError

        try:
            return func(*args, **kwargs)
        except (CheckpointError, FileExistsError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


@click.group("model-parts")
def model_parts() -> None:
    """Vision encoders, the Image Aligner and the ONNX conditioner."""


@model_parts.command("convert-clip")
@click.argument("source", type=click.Path(file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@_fail_on_checkpoint_errors
def convert_clip(source: str, out: str) -> None:
    """Make a CLIP encoder folder from a local transformers CLIP folder (e.g. clip-vit-base-patch32)."""
    from .encoders import convert_clip_checkpoint

    folder = convert_clip_checkpoint(source, out)
    click.echo(f"CLIP encoder written to {folder}")


@model_parts.command("convert-imagebind")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--heads",
    default=16,
    show_default=True,
    help="Attention heads of the vision trunk (16 for imagebind_huge).",
)
@_fail_on_checkpoint_errors
def convert_imagebind(checkpoint: str, out: str, heads: int) -> None:
    """Make an ImageBind encoder folder from imagebind_huge.pth (keeps the vision tower only)."""
    from .encoders import convert_imagebind_checkpoint

    folder = convert_imagebind_checkpoint(checkpoint, out, heads=heads)
    click.echo(f"ImageBind vision encoder written to {folder}")


@model_parts.command("make-tiny-encoder")
@click.argument("kind", type=click.Choice(["clip", "imagebind"]))
@click.argument("out", type=click.Path(file_okay=False))
def make_tiny_encoder_cmd(kind: str, out: str) -> None:
    """Write a tiny random encoder in the real format (for tests and demos; makes no sense as music)."""
    from .encoders import make_tiny_encoder

    click.echo(f"tiny {kind} encoder written to {make_tiny_encoder(kind, out)}")


@model_parts.command("export-onnx")
@click.option(
    "--encoder", "encoder_dir", required=True, type=click.Path(file_okay=False), help="Encoder folder."
)
@click.option(
    "--aligner", "aligner_dir", required=True, type=click.Path(file_okay=False), help="Aligner folder."
)
@click.option("--opset", default=18, show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
@click.argument("out", type=click.Path(file_okay=False))
@_fail_on_checkpoint_errors
def export_onnx(encoder_dir: str, aligner_dir: str, opset: int, overwrite: bool, out: str) -> None:
    """Export encoder + aligner to one ONNX graph in OUT and check it against PyTorch."""
    import numpy as np
    import torch

    from .aligner import ImageAligner
    from .encoders import load_vision_encoder
    from .onnx_export import OnnxImageConditioner, export_image_conditioner

    encoder = load_vision_encoder(encoder_dir)
    aligner = ImageAligner.from_pretrained(aligner_dir)
    folder = export_image_conditioner(encoder, aligner, out, opset=opset, overwrite=overwrite)
    _, images = _load_images(())
    conditioner = OnnxImageConditioner(folder)
    tokens, _ = conditioner(images)
    with torch.no_grad():
        reference = aligner(encoder.encode(images)).numpy()
    diff = float(np.abs(tokens - reference).max())
    click.echo(
        f"exported to {folder}; onnxruntime ({conditioner.provider}) vs PyTorch on {len(images)} demo paintings: max |diff| {diff:.2e}"
    )
    if diff > 1e-4:
        raise click.ClickException(f"ONNX output differs from PyTorch by {diff:.2e} (> 1e-4)")


@model_parts.command("run-onnx")
@click.argument("folder", type=click.Path(file_okay=False))
@click.argument("images", nargs=-1, type=click.Path(dir_okay=False))
@_fail_on_checkpoint_errors
def run_onnx(folder: str, images: tuple[str, ...]) -> None:
    """Run an exported conditioner on IMAGES (default: demo paintings); say which provider ran."""
    from .onnx_export import OnnxImageConditioner

    files, arrays = _load_images(images)
    conditioner = OnnxImageConditioner(folder)
    started = time.perf_counter()
    tokens, embeds = conditioner(arrays)
    elapsed = time.perf_counter() - started
    click.echo(f"provider: {conditioner.provider}")
    click.echo(
        f"{len(files)} images → tokens {tokens.shape}, image embeddings {embeds.shape} in {elapsed:.2f} s"
    )


if __name__ == "__main__":
    model_parts()
