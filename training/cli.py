"""``art2mus train``: from a folder of pairs (or ArtSound) to a deployed model bundle.

art2mus train init BUNDLE --audioldm2 SNAPSHOT --encoder ENCODER   (fresh aligner)
art2mus train artsound --table T --images DIR --audio DIR --out pairs.csv
art2mus train pair --audio-embeds A --image-embeds I --out pairs.csv
art2mus train prepare --pairs CSV --model BUNDLE --out DIR
art2mus train run --data DIR --model BUNDLE --out RUN [...]   (= training/train.py)
art2mus train evaluate RUN
art2mus train export RUN --out BUNDLE
"""

from __future__ import annotations

from pathlib import Path

import click

_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def train() -> None:
    """Train the Image Aligner and export it as a model bundle (see docs/training.md)."""


@train.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--audioldm2", required=True, type=_DIR, help="Local AudioLDM 2 snapshot folder.")
@click.option("--encoder", required=True, type=_DIR, help="Vision encoder folder (CLIP or ImageBind).")
@click.option("--num-tokens", type=int, help="Aligner tokens (default: the paper's 16 ImageBind / 6 CLIP).")
@click.option("--seed", type=int, default=0, show_default=True)
def init(out: Path, audioldm2: Path, encoder: Path, num_tokens: int | None, seed: int) -> None:
    """Build the starting bundle OUT: AudioLDM 2's parts with a freshly initialised aligner."""
    from .export import ExportError, init_bundle

    try:
        version = init_bundle(out, audioldm2=audioldm2, encoder=encoder, num_tokens=num_tokens, seed=seed)
    except (ExportError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"built {out} (model version {version})")


@train.command()
@click.option("--table", required=True, type=_FILE, help="ArtSound's pairs table (CSV).")
@click.option("--images", required=True, type=_DIR, help="ArtGraph image folder.")
@click.option("--audio", required=True, type=_DIR, help="FMA audio folder (000/000002.mp3 layout).")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="pairs.csv to write."
)
@click.option("--image-column", default="image", show_default=True)
@click.option("--track-column", default="track_id", show_default=True)
@click.option("--style-column", default="style", show_default=True)
def artsound(
    table: Path, images: Path, audio: Path, out: Path, image_column: str, track_column: str, style_column: str
) -> None:
    """Convert ArtSound's layout (ArtGraph images, FMA tracks, its pairs table) to a pairs.csv."""
    from .artsound import convert_artsound
    from .data import DataError

    try:
        r = convert_artsound(
            table,
            images,
            audio,
            out,
            image_column=image_column,
            track_column=track_column,
            style_column=style_column,
        )
    except DataError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{out}: {r.written} pairs; {r.missing_image} missing image(s), {r.missing_audio} missing audio"
    )


def _load_embeds(path: Path):
    import numpy as np

    if path.suffix == ".npy":
        return np.load(path)
    from safetensors.numpy import load_file

    tensors = load_file(str(path))
    if len(tensors) != 1:
        raise click.ClickException(f"{path}: expected one tensor, found {sorted(tensors)}")
    return next(iter(tensors.values()))


@train.command()
@click.option(
    "--audio-embeds", required=True, type=_FILE, help="(N, d) audio embeddings: .npy or .safetensors."
)
@click.option(
    "--image-embeds", required=True, type=_FILE, help="(M, d) image embeddings: .npy or .safetensors."
)
@click.option("--audio-list", type=_FILE, help="N audio paths, one a line (then a pairs.csv is written).")
@click.option("--image-list", type=_FILE, help="M image paths, one a line.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda[:N].")
@click.option("--k", default=32, show_default=True, help="Candidates kept per audio between refills.")
@click.option("--audio-block", default=4096, show_default=True)
@click.option("--image-block", default=16384, show_default=True)
def pair(
    audio_embeds: Path,
    image_embeds: Path,
    audio_list: Path | None,
    image_list: Path | None,
    out: Path,
    device: str,
    k: int,
    audio_block: int,
    image_block: int,
) -> None:
    """Pair each audio with its most similar unpaired image, highest similarities first (exact)."""
    import csv

    from .pairing import PairingStats, greedy_pairs

    a, i = _load_embeds(audio_embeds), _load_embeds(image_embeds)
    stats = PairingStats()
    result = greedy_pairs(
        a, i, k=k, audio_block=audio_block, image_block=image_block, device=device, stats=stats
    )
    names_a = audio_list.read_text().splitlines() if audio_list else None
    names_i = image_list.read_text().splitlines() if image_list else None
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "image", "audio"] if names_a and names_i else ["audio_index", "image_index"])
        for ai, ii in enumerate(result):
            if ii < 0:
                continue
            w.writerow([ai, names_i[ii], names_a[ai]] if names_a and names_i else [ai, int(ii)])
    paired = int((result >= 0).sum())
    click.echo(f"{out}: {paired} pairs ({len(result) - paired} audio left unpaired; {stats.refills} refills)")


@train.command()
@click.option("--pairs", "pairs_csv", required=True, type=_FILE, help="pairs.csv")
@click.option("--model", required=True, type=_DIR, help="Model bundle (its encoder and VAE are used).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--shard-size", default=256, show_default=True)
@click.option("--batch", default=16, show_default=True)
@click.option("--seconds", default=10.0, show_default=True, help="Audio crop length.")
@click.option("--val-count", default=100, show_default=True)
@click.option("--split-seed", default=0, show_default=True)
@click.option("--device", default="cpu", show_default=True)
def prepare(
    pairs_csv: Path,
    model: Path,
    out: Path,
    shard_size: int,
    batch: int,
    seconds: float,
    val_count: int,
    split_seed: int,
    device: str,
) -> None:
    """Precompute image embeddings and VAE latents into sharded safetensors (resumable)."""
    from engine.engines.diffusion.bundle import BundleError

    from .data import DataError
    from .prepare import prepare as run_prepare

    try:
        r = run_prepare(
            pairs_csv,
            model,
            out,
            shard_size=shard_size,
            batch=batch,
            seconds=seconds,
            val_count=val_count,
            split_seed=split_seed,
            device=device,
        )
    except (DataError, BundleError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{out}: {r.kept} pairs kept, {len(r.skipped)} skipped ({r.shards_done_before} shard(s) reused)"
    )
    for key, reason in sorted(r.skipped.items()):
        click.echo(f"  skipped {key}: {reason}", err=True)


@train.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(args: tuple[str, ...]) -> None:
    """Train (the options of training/train.py; --help lists them)."""
    from .train import main

    main(list(args))


@train.command()
@click.argument("run_dir", type=_DIR)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Bundle to write."
)
@click.option("--model", type=_DIR, help="Base bundle (default: the one the run trained against).")
def export(run_dir: Path, out: Path, model: Path | None) -> None:
    """Export RUN's trained aligner as a model bundle (`art2mus models check` accepts it)."""
    from engine.engines.diffusion.bundle import BundleError

    from .export import ExportError, export_run

    try:
        version = export_run(run_dir, out, model=model)
    except (ExportError, BundleError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"exported {out} (model version {version})")


@train.command()
@click.argument("run_dir", type=_DIR)
@click.option(
    "--embedder",
    default="melstats",
    show_default=True,
    help="Audio embedder for FAD: vggish:PATH or melstats.",
)
@click.option("--steps", default=200, show_default=True, help="DDIM steps (the paper's validation: 200).")
@click.option("--guidance", default=3.5, show_default=True)
@click.option("--seconds", default=10.0, show_default=True)
@click.option("--limit", type=int, help="Only the first N validation artworks.")
@click.option("--device", default="cpu", show_default=True)
@click.option(
    "--imagebind-audio",
    type=click.Path(exists=True, path_type=Path),
    help="ImageBind audio tower for the ImageBind score: imagebind_huge.pth or a saved tower folder.",
)
def evaluate(
    run_dir: Path,
    embedder: str,
    steps: int,
    guidance: float,
    seconds: float,
    limit: int | None,
    device: str,
    imagebind_audio: Path | None,
) -> None:
    """Generate the validation clips of RUN and report FAD, KL (and IBSc where possible)."""
    from .evaluate import evaluate_run

    try:
        r = evaluate_run(
            run_dir,
            embedder=embedder,
            steps=steps,
            guidance_scale=guidance,
            seconds=seconds,
            limit=limit,
            device=device,
            imagebind_audio=imagebind_audio,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"{r['clips']} clips: FAD ({r['embedder']}) {r['fad']:.4f}, KL (paper) {r['kl_db_spectrum_paper']:.6f}"
    )
    if r["ibsc_gt_gen"] is not None:
        art = r["ibsc_art_gen"]
        click.echo(
            f"IBSc(gt, gen) {r['ibsc_gt_gen']:.4f}"
            + (f", IBSc(art, gen) {art:.4f}" if art is not None else "")
        )
    click.echo(f"IBSc: {r['ibsc_note']}")
