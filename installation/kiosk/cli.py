"""``art2mus kiosk``: the visitor-facing touchscreen app."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from engine.cli_support import get_config


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not WIDTHxHEIGHT, e.g. 1920x1080") from None
    return w, h


@click.command()
@click.option(
    "--collection",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Demo mode: run the catalog, the default engine (in a child process) and the player "
    "on this collection folder, with no engine service.",
)
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Database file (default: store.database; in demo mode a per-user cache file).",
)
@click.option(
    "--camera",
    metavar="SOURCE",
    help="Add the camera page: a camera number, /dev/videoN, an RTSP/HTTP URL, or a video or image "
    "file (docs/capture.md).",
)
@click.option("--windowed", is_flag=True, help="A normal window with a cursor and keys (development).")
@click.option("--size", default="1920x1080", show_default=True, help="Window size with --windowed.")
@click.pass_context
def kiosk(
    ctx: click.Context,
    collection: Path | None,
    db_path: Path | None,
    camera: str | None,
    windowed: bool,
    size: str,
) -> None:
    """Open the touchscreen kiosk (full screen; exit through the curator panel)."""
    if not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
    ):
        raise click.ClickException(
            "no display: set DISPLAY or WAYLAND_DISPLAY (on a machine without a screen run "
            "`xvfb-run -s '-screen 0 1920x1080x24' art2mus kiosk ...`, see docs/kiosk.md)"
        )
    config = get_config(ctx)
    from engine.store import SchemaError, StoreError

    from .app import run_kiosk

    try:
        code = run_kiosk(
            config, collection=collection, db_path=db_path, windowed=windowed, size=_size(size), camera=camera
        )
    except (StoreError, SchemaError) as exc:
        raise click.ClickException(str(exc)) from None
    sys.exit(code)
