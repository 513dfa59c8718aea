"""``art2mus status [--json]``: the installation's health, read from the real state.

The same report as the engine service's ``GET /health`` (``engine/health.py``), gathered here
directly, so it works when the engine service is down (that is often why one asks).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .cli_support import get_config


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (the same as GET /health).")
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Database file (default: store.database from the configuration).",
)
@click.pass_context
def status(ctx: click.Context, as_json: bool, db_path: Path | None) -> None:
    """What runs and how: engine and why, clips, artworks, audio, disk, errors, services.

    Exits 0 when the engine service runs and the store is readable, 1 otherwise.
    """
    from .health import health_report, summary_lines

    report = health_report(get_config(ctx), db_path)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        for line in summary_lines(report):
            click.echo(line)
    ctx.exit(0 if report["ok"] else 1)
