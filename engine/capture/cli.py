"""``art2mus capture SOURCE``: photograph a painting, straighten it, and (with ``--db``) make
it an artwork of the catalog; the kiosk's camera view without Qt, for tests and scripts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from engine.cli_support import get_config, open_database

EXIT_REFUSED = 3


@click.command()
@click.argument("source")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder for the straightened painting (DIR/capture.png).",
)
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also recognise it against this catalog; a new painting is added and its music queued.",
)
@click.option("--whole-frame", is_flag=True, help="Capture the whole frame, without looking for a painting.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.pass_context
def capture(
    ctx: click.Context, source: str, out_dir: Path, db_path: Path | None, whole_frame: bool, as_json: bool
) -> None:
    """Capture a painting from SOURCE: a camera number, /dev/videoN, an RTSP/HTTP URL, a video
    file or an image file. Exit status 0 when captured, 3 when the shot was refused (the
    reason says what to change)."""
    config = get_config(ctx)
    from .burst import best_shot
    from .source import FrameSource, SourceError

    try:
        with FrameSource(source) as frames_from:
            frames = frames_from.burst(config.capture.burst_frames)
    except SourceError as exc:
        raise click.ClickException(str(exc)) from None
    if not frames:
        raise click.ClickException(f"{source}: no picture came from it")
    shot = best_shot(frames, whole=whole_frame)
    result: dict = {
        "status": "ok" if shot.ok else "rejected",
        "reason": shot.reason,
        "corners": shot.detection.corners.astype(float).round(2).tolist()
        if shot.detection is not None
        else None,
        "crop": None,
        "sharpness": round(shot.sharpness, 4),
        "recognised": None,
    }
    note = ""
    if shot.ok and shot.detection is not None:
        from .keep import write_png

        crop = shot.detection.crop
        result["crop"] = str(write_png(out_dir / "capture.png", crop))
        if db_path is not None:
            recognised, note = _catalog(ctx, db_path, crop, shot.frame, config)
            result["recognised"] = recognised
    if as_json:
        click.echo(json.dumps(result))
    else:
        _print(result, note)
    if note and as_json:
        click.echo(note, err=True)
    sys.exit(0 if shot.ok else EXIT_REFUSED)


def _catalog(ctx: click.Context, db_path: Path, crop, frame, config) -> tuple[dict | None, str]:
    """Recognise the capture, or add it to the catalog and queue its music."""
    from engine.store.jobs import JobQueue

    from .keep import add_capture, enqueue_capture
    from .recognise import CatalogIndex

    db = open_database(ctx, db_path)
    try:
        index = CatalogIndex(db)
        index.refresh()
        match = index.match(crop)
        if match is not None:
            return (
                match.as_dict(),
                f"recognised: {match.title or match.path} ({match.inliers} matching points)",
            )
        stored = add_capture(
            db,
            crop,
            config.capture.folder,
            frame=frame if config.capture.keep_full_frame else None,
            thumbnail_size=config.catalog.thumbnail_size,
        )
        job = enqueue_capture(JobQueue(db), stored, max_attempts=config.engine.max_attempts)
        return (
            None,
            f"new painting: added as artwork {stored.artwork_id} ({stored.path}); music queued (job {job})",
        )
    finally:
        db.close()


def _print(result: dict, note: str) -> None:
    if result["status"] != "ok":
        click.echo(f"refused: {result['reason']}")
        return
    click.echo(f"captured: {result['crop']} (sharpness {result['sharpness']:.2f})")
    if result["corners"] is not None:
        corners = ", ".join(f"({x:.0f}, {y:.0f})" for x, y in result["corners"])
        click.echo(f"canvas corners in the frame: {corners}")
    if note:
        click.echo(note)
