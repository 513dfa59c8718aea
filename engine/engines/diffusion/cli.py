"""``art2mus models``: build, make and check Art2Mus model bundles."""

from __future__ import annotations

from pathlib import Path

import click


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group()
def models() -> None:
    """Build, make and check Art2Mus model bundles (the diffusion engine's weights)."""


@models.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--audioldm2",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Local AudioLDM 2 snapshot folder, e.g. a download of cvssp/audioldm2-music.",
)
@click.option(
    "--encoder",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Vision encoder folder (CLIP or ImageBind, see docs/art2mus-engine.md).",
)
@click.option(
    "--aligner",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Trained Image Aligner folder (config.json + safetensors).",
)
def build(out: Path, audioldm2: Path, encoder: Path, aligner: Path) -> None:
    """Build a bundle in OUT from local folders (nothing is downloaded).

    Runs FLAN-T5, CLAP and the projection model once to store the fixed prompt's conditioning,
    so they are not needed at run time. The input folders are only read.
    """
    from .bundle import BundleError, build_bundle
    from .checkpoints import CheckpointError

    try:
        version = build_bundle(
            out,
            audioldm2=audioldm2,
            encoder=encoder,
            aligner=aligner,
            progress=lambda m: click.echo(m, err=True),
        )
    except (BundleError, CheckpointError) as exc:
        raise _fail(exc) from None
    click.echo(f"built {out} (model version {version})")


@models.command("make-tiny")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--encoder",
    "encoder_kind",
    type=click.Choice(["clip", "imagebind"]),
    default="clip",
    show_default=True,
    help="Which kind of (tiny random) vision encoder to include.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random weights.")
def make_tiny(out: Path, encoder_kind: str, seed: int) -> None:
    """Make a tiny random bundle in OUT, for tests and demos without real weights.

    Its music is noise-like, but its shapes, clip lengths (16 kHz, 160 samples per mel frame)
    and loading code are the real ones.
    """
    from .bundle import BundleError, make_tiny_bundle
    from .checkpoints import CheckpointError

    try:
        version = make_tiny_bundle(out, encoder_kind=encoder_kind, seed=seed)
    except (BundleError, CheckpointError) as exc:
        raise _fail(exc) from None
    click.echo(f"made tiny bundle {out} ({encoder_kind} encoder, model version {version})")


@models.command("convert-aligner")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--tokens",
    required=True,
    type=click.IntRange(min=1),
    help="Tokens per image: 1 for the authors' art2mus_img_proj_layer.pt, 4 for art2mus_4_img_proj_layer.pt.",
)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="New aligner folder."
)
@click.option(
    "--token-dim",
    type=click.IntRange(min=1),
    default=768,
    show_default=True,
    help="GPT-2's width (768 in cvssp/audioldm2).",
)
def convert_aligner(checkpoint: Path, tokens: int, out: Path, token_dim: int) -> None:
    """Convert the authors' published projection layer (a .pt state dict) to an aligner folder.

    OUT is loadable with ImageAligner.from_pretrained and goes to `models build --aligner`;
    the bundle then conditions generation as the authors' pipeline does. CHECKPOINT is only read.
    """
    from .checkpoints import CheckpointError
    from .convert_authors import convert_authors_checkpoint

    try:
        aligner = convert_authors_checkpoint(checkpoint, out, tokens=tokens, token_dim=token_dim)
    except CheckpointError as exc:
        raise _fail(exc) from None
    c = dict(aligner.config)
    click.echo(
        f"wrote {out}: {c['architecture']} aligner {c['input_dim']} → {c['embed_dim']} → "
        f"{c['num_tokens']}×{c['token_dim']} ({c['conditioning']} conditioning)"
    )


@models.command()
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--quick", is_flag=True, help="Check files and shapes only; do not load the weights.")
def check(folder: Path, quick: bool) -> None:
    """Verify a bundle: every file present and unchanged, shapes that fit, weights that load."""
    from .bundle import check_bundle, read_manifest

    problems = check_bundle(folder, load=not quick)
    if problems:
        for problem in problems:
            click.echo(f"  {problem}", err=True)
        raise click.ClickException(f"{folder}: {len(problems)} problem(s); the bundle cannot be used")
    from .bundle import model_version

    manifest = read_manifest(folder)
    enc = manifest["components"]["encoder"]
    click.echo(f"{folder}: OK")
    click.echo(f"  model version  {model_version(folder)}")
    click.echo(
        f"  encoder        {enc['kind']} ({enc['dim']}-d), aligner "
        f"{manifest['components']['aligner'].get('num_tokens')} tokens"
    )
    click.echo(f"  files          {len(manifest['files'])} verified (sha256)")
    click.echo("  libraries      " + ", ".join(f"{k} {v}" for k, v in sorted(manifest["libraries"].items())))


def _add_model_parts() -> None:
    """The model-part commands (encoder conversion, ONNX) from parts_cli.py, as `models` subcommands."""
    from .parts_cli import model_parts

    for name, command in model_parts.commands.items():
        if name not in models.commands:
            models.add_command(command, name)


_add_model_parts()
