"""CLI: `art2mus generate` and `art2mus pregenerate` (`art2mus engine serve` is in service_cli.py)."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import click

from engine.cli_support import (
    db_option,
    engine_for,
    get_config,
    gpus_option,
    model_option,
    open_database,
    parse_gpus,
)
from engine.engines.base import MAX_DURATION, MAX_SEED, MIN_DURATION
from engine.loops import Loop

ENGINE_CHOICES = click.Choice(["auto", "default", "art2mus"])


def _check_duration(ctx, param, value):
    if value is not None and not (MIN_DURATION <= value <= MAX_DURATION):
        raise click.BadParameter(
            f"{value:g} s is out of range; allowed: {MIN_DURATION:g} to {MAX_DURATION:g} seconds"
        )
    return value


def _check_seed(ctx, param, value):
    if value is not None and not (0 <= value <= MAX_SEED):
        raise click.BadParameter(f"{value} is out of range; allowed: 0 to {MAX_SEED}")
    return value


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--engine",
    "engine_name",
    type=ENGINE_CHOICES,
    help="Engine (default: engine.name from the configuration).",
)
@click.option(
    "--duration",
    type=float,
    callback=_check_duration,
    help=f"Clip length in seconds ({MIN_DURATION:g}-{MAX_DURATION:g}; default from the configuration).",
)
@click.option(
    "--seed", type=int, callback=_check_seed, help="Seed (0 or more; default from the configuration)."
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the WAV files (created if needed).",
)
@model_option
@click.pass_context
def generate(ctx, images, engine_name, duration, seed, out_dir, model):
    """Make a clip for each IMAGE and write OUT/<image name>.wav (no database needed).

    A file that cannot be read is reported and skipped; the exit status is 1 if any failed.
    """
    from engine.catalog.images import ImageError, load_rgb
    from engine.engines.base import GenerationError
    from engine.engines.registry import clip_duration

    config = get_config(ctx)
    seed = config.engine.seed if seed is None else seed
    engine, why = engine_for(config, engine_name, model)
    duration = clip_duration(config, engine.name) if duration is None else duration
    click.echo(f"using the {why}", err=True)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise click.ClickException(f"{out_dir}: cannot create the output folder: {exc.strerror}") from None

    failed = 0
    written: dict[str, Path] = {}
    for path in images:
        target = out_dir / f"{path.stem}.wav"
        if target.name in written:
            click.echo(
                f"error: {path}: same output name as {written[target.name]} ({target}); skipped", err=True
            )
            failed += 1
            continue
        started = time.perf_counter()
        try:
            image = load_rgb(path, max_pixels=config.catalog.max_image_pixels, max_side=1024)
            clip = engine.generate(image, duration, seed)
        except (ImageError, GenerationError, ValueError) as exc:
            message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            click.echo(f"error: {message}", err=True)
            failed += 1
            continue
        _write_wav_atomically(target, clip.audio, clip.sample_rate, clip.loop_or_whole())
        written[target.name] = path
        details = clip.details
        choices = ", ".join(
            x
            for x in (
                details.get("key_name"),
                f"{details['tempo_bpm']:g} bpm" if "tempo_bpm" in details else None,
            )
            if x
        )
        click.echo(
            f"{target}  {clip.duration:g} s{' (' + choices + ')' if choices else ''}  "
            f"{time.perf_counter() - started:.2f} s  {clip.caption}"
        )
    if failed:
        click.echo(f"{failed} of {len(images)} images failed", err=True)
        ctx.exit(1)


def _write_wav_atomically(target: Path, audio, rate: int, loop: Loop) -> None:
    """Write a 32-bit float WAV next to ``target`` and rename it into place (never half a
    file). No time stamp (libsndfile's PEAK chunk has one), so the same clip always gives the
    same file, byte for byte. The clip's loop goes in as a ``smpl`` chunk, the loop marker
    `art2mus audio play` (and samplers) read."""
    from engine.loops import write_float_wav

    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".wav.part")
    os.close(fd)
    try:
        write_float_wav(Path(tmp), audio, rate, loop)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.command()
@db_option
@click.option(
    "--engine",
    "engine_name",
    type=ENGINE_CHOICES,
    help="Engine (default: engine.name from the configuration).",
)
@click.option("--no-scan", is_flag=True, help="Do not scan the collection folder first.")
@click.option(
    "--retry-failed", is_flag=True, help="Give artworks whose generation failed another set of attempts."
)
@model_option
@gpus_option
@click.option(
    "--ray",
    "ray_address",
    metavar="ADDRESS",
    help="Make the clips on a Ray cluster (needs art2mus[cluster]): 'auto' (the cluster this node "
    "belongs to), 'ray://HOST:10001' (Ray Client), or 'local' (a Ray on this machine).",
)
@click.option(
    "--ray-actors",
    type=click.IntRange(min=1),
    help="Engine actors on the cluster (default: one per GPU; one on a cluster without GPUs).",
)
@click.option(
    "--ray-stage",
    type=click.Path(file_okay=False, path_type=Path),
    help="Shared folder the nodes write clip files to, when the database's clip folder is not on "
    "storage every node mounts (the head node copies them into the store).",
)
@click.pass_context
def pregenerate(
    ctx, db_path, engine_name, no_scan, retry_failed, model, gpus, ray_address, ray_actors, ray_stage
):
    """Fill the clip cache for every ready artwork of the collection.

    Scans the collection folder, queues every artwork that has no clip for this engine and
    model version, and generates them. Clips already cached are never made again.
    """
    from tqdm import tqdm

    from engine.store.jobs import JobQueue
    from engine.worker import Worker

    if ray_address and gpus:
        raise click.UsageError("--ray and --gpus exclude each other (a Ray cluster places its own workers)")
    if (ray_actors or ray_stage) and not ray_address:
        raise click.UsageError("--ray-actors and --ray-stage go with --ray ADDRESS")
    config = get_config(ctx)
    db = open_database(ctx, db_path)
    if ray_address:
        _pregenerate_on_ray(ctx, config, db, engine_name, model, no_scan, ray_address, ray_actors, ray_stage)
        return
    if gpus:
        _pregenerate_on_devices(ctx, config, db, gpus, engine_name, model, no_scan, retry_failed)
        return
    engine, why = engine_for(config, engine_name, model)
    click.echo(f"using the {why}", err=True)
    if not no_scan:
        _scan(db, config)
    # The diffusion engine runs several artworks per GPU batch.
    worker = Worker(db, engine, config, batch_artworks=engine.name == "art2mus")
    if retry_failed:
        n = JobQueue(db).retry_failed()
        click.echo(f"{n} failed jobs queued again", err=True)
    worker.move_clip_audio_to_files()  # a store made before clip files (resumes a move)
    worker.enqueue_missing()
    total = worker.pending()
    if total == 0:
        click.echo("nothing to do: every ready artwork already has its clips")
        db.close()
        return
    bar = tqdm(total=total, unit="artwork", disable=not sys.stderr.isatty(), file=sys.stderr)

    def progress(result):
        bar.update(1)
        bar.set_postfix_str(Path(result.path).name if result.path else str(result.artwork_id))

    try:
        summary = worker.run_until_idle(progress=progress)
    finally:
        bar.close()
        db.close()
    click.echo(
        f"generated {summary.clips} clips for {summary.done} artworks in {summary.seconds:.1f} s"
        f"; {summary.skipped} skipped, {summary.retrying} to retry, {summary.failed} failed"
    )
    for path, error in summary.errors:
        click.echo(f"error: {path}: {error}" if path and path not in error else f"error: {error}", err=True)
    if summary.failed or summary.retrying:
        ctx.exit(1)


def _pregenerate_on_ray(ctx, config, db, engine_name, model, no_scan, address, actors, stage) -> None:
    """`pregenerate --ray`: the clips made on a Ray cluster, imported into the store here."""
    try:
        from engine.cluster.pipeline import connect, pregenerate_on_ray
    except ImportError as exc:  # ray is an optional extra
        raise click.ClickException(f"--ray needs Ray: pip install 'art2mus[cluster]' ({exc})") from None
    engine, why = engine_for(config, engine_name, model)
    click.echo(f"using the {why} (its identity keys the clips the cluster makes)", err=True)
    if not no_scan:
        _scan(db, config)
    from engine.store.clip_files import move_blobs_to_files

    move_blobs_to_files(db)
    try:
        connect(address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise click.ClickException(f"--ray {address}: cannot connect to the Ray cluster: {exc}") from None
    from ray.exceptions import RayError

    try:
        summary = pregenerate_on_ray(db, config, engine, actors=actors, stage=stage)
    except RayError as exc:
        # E.g. an actor that could not load its engine: Ray's error ends with the reason.
        # What was imported so far stays; running the command again resumes.
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise click.ClickException(f"the Ray cluster failed: {reason}; run again to resume") from None
    finally:
        db.close()
    if summary.planned == 0:
        click.echo("nothing to do: every ready artwork already has its clips")
        return
    click.echo(
        f"made {summary.imported} clips on the Ray cluster in {summary.seconds:.1f} s "
        f"({summary.planned} planned, {summary.skipped} already stored, {len(summary.errors)} failed)"
    )
    for error in summary.errors:
        click.echo(f"error: {error}", err=True)
    if summary.errors:
        ctx.exit(1)


def _pregenerate_on_devices(ctx, config, db, gpus, engine_name, model, no_scan, retry_failed) -> None:
    """`pregenerate --gpus`: one worker process per device, all claiming from the queue."""
    from engine.store.jobs import JobQueue
    from engine.worker_pool import run_pool

    devices = parse_gpus(gpus)
    if not no_scan:
        _scan(db, config)
    if retry_failed:
        click.echo(f"{JobQueue(db).retry_failed()} failed jobs queued again", err=True)
    db_path = db.path
    db.close()
    click.echo(f"starting {len(devices)} worker processes: {', '.join(devices)}", err=True)
    results = run_pool(
        devices,
        config_path=config.source,
        db_path=db_path,
        engine_name=engine_name,
        model=model,
        until_idle=True,
    )
    failed = 0
    for r in results:
        click.echo(
            f"{r.device} ({r.engine or 'no engine'}): {r.clips} clips for {r.done} artworks"
            f"{'' if r.ok else ' — worker failed'}"
        )
        for error in r.errors:
            click.echo(f"error: [{r.device}] {error}", err=True)
        failed += r.failed + (not r.ok)
    click.echo(
        f"generated {sum(r.clips for r in results)} clips for {sum(r.done for r in results)} "
        f"artworks on {len(devices)} devices"
    )
    if failed:
        ctx.exit(1)


def _scan(db, config) -> None:
    from engine.catalog.scanner import ScanError, scan_collection

    try:
        s = scan_collection(db, config.collection.path, config.catalog)
    except ScanError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"catalog {config.collection.path}: {s.added} added, {s.updated} updated, {s.renamed} renamed, "
        f"{s.missing} missing, {s.invalid} invalid, {s.unchanged} unchanged",
        err=True,
    )
    for path, reason in s.invalid_items:
        click.echo(f"invalid: {path}: {reason}", err=True)
