"""CLI: `art2mus store prune [--dry-run]`, bounded storage for the clip store (prune.py)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from engine.cli_support import db_option


@click.group("store")
def store() -> None:
    """The clip store: prune clips no longer needed and hand the space back."""


@store.command("prune")
@db_option
@click.option("--dry-run", is_flag=True, help="Show what would go; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def prune_cmd(ctx: click.Context, db_path: str | None, dry_run: bool, as_json: bool) -> None:
    """Remove the clips of artworks missing longer than store.missing_grace_days, of replaced
    images, and superseded clips (never a chosen clip of a present artwork), their files, and
    clip files no clip names; then vacuum. A store made before clip files has its audio moved
    out of the database first."""
    from engine.cli_support import get_config, open_database

    from .clip_files import clip_folder, move_blobs_to_files, sweep_orphans
    from .prune import plan_prune, prune_counting_bytes, reclaim

    config = get_config(ctx)
    db = open_database(ctx, db_path)
    try:
        moved = 0 if dry_run else move_blobs_to_files(db)
        items = plan_prune(db, config.store.missing_grace_days * 86400)
        result: dict[str, Any] = {
            "database": str(db.path),
            "clip_folder": str(clip_folder(db.path)),
            "dry_run": dry_run,
            "moved_to_files": moved,
            "clips": [
                {"id": i.clip_id, "artwork": i.path, "reason": i.reason, "bytes": i.size} for i in items
            ],
            "bytes": sum(i.size for i in items),
        }
        if dry_run:
            result["orphan_files"], result["orphan_bytes"] = sweep_orphans(db, dry_run=True)
        else:
            result["deleted"], files_freed = prune_counting_bytes(db, items)
            result["orphan_files"], result["orphan_bytes"] = sweep_orphans(db)
            vacuumed, result["vacuum"] = reclaim(db)
            result["freed_bytes"] = vacuumed + files_freed + result["orphan_bytes"]
    finally:
        db.close()
    if as_json:
        json.dump(result, sys.stdout, indent=2)
        click.echo()
        return
    _print(result)


def _print(result: dict[str, Any]) -> None:
    verb = "would remove" if result["dry_run"] else "removed"
    for clip in result["clips"]:
        click.echo(
            f"{verb} clip {clip['id']} of {clip['artwork']}: {clip['reason']} ({clip['bytes'] / 1e6:.1f} MB)"
        )
    if result["moved_to_files"]:
        click.echo(f"moved the audio of {result['moved_to_files']} clips into {result['clip_folder']}")
    if result["orphan_files"]:
        click.echo(
            f"{verb} {result['orphan_files']} clip files no clip names "
            f"({result['orphan_bytes'] / 1e6:.1f} MB) from {result['clip_folder']}"
        )
    click.echo(
        f"{result['database']}: {verb} {len(result['clips'])} clips ({result['bytes'] / 1e6:.1f} MB of audio)"
    )
    if not result["dry_run"]:
        click.echo(f"{result['freed_bytes'] / 1e6:.1f} MB handed back to the disk ({result['vacuum']})")
