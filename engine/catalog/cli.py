"""``art2mus catalog``: scan, list and watch a collection folder."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from engine.cli_support import get_config, open_database
from engine.store import ArtworkStatus

# Plain strings: click.Choice would match enum members by name (READY), not value.
STATUSES = tuple(s.value for s in ArtworkStatus)


@click.group()
def catalog() -> None:
    """Scan, list and watch a collection folder (images + catalog.csv/json/sidecars)."""


def _folder(ctx: click.Context, folder: str | None) -> Path:
    return Path(folder) if folder else get_config(ctx).collection.path


def _catalog_config(ctx: click.Context):
    return get_config(ctx).catalog


def _artwork_json(a: dict) -> dict:
    out = {
        "id": a["id"],
        "path": a["path"],
        "title": a["title"],
        "artist": a["artist"],
        "year": a["year"],
        "style": a["style"],
        "description": a["description"],
        "status": a["status"],
        "image_hash": a["image_hash"],
        "width": a["width"],
        "height": a["height"],
        "reason": a["reason"] if a["status"] == ArtworkStatus.INVALID else "",
        "metadata_source": a["metadata_source"],
        "extra": a["extra"],
    }
    return out


def _print_summary(summary) -> None:
    s = summary
    total = s.added + s.updated + s.renamed + s.unchanged
    click.echo(
        f"Scanned {s.folder}: {total} artworks — {s.added} added, {s.updated} updated, "
        f"{s.renamed} renamed, {s.missing} now missing, {s.unchanged} unchanged "
        f"({s.seconds:.1f} s)"
    )
    if s.invalid_items:
        click.echo(f"Invalid ({len(s.invalid_items)}), not shown to visitors:")
        for path, reason in s.invalid_items:
            click.echo(f"  {path}: {reason}")
    if s.problems:
        click.echo(f"Problems ({len(s.problems)}):")
        for path, reason in s.problems:
            click.echo(f"  {path}: {reason}")


class _Bar:
    """A tqdm progress bar for the files being read, only on a terminal."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar: Any = None  # a tqdm bar, made when the first file is read

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total == 0:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="image", desc="Reading images", leave=False)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@catalog.command()
@click.argument("folder", required=False, type=click.Path(file_okay=False))
@click.option(
    "--db", "db_path", type=click.Path(dir_okay=False), help="Database file (default: store.database)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary and artworks as JSON.")
@click.option("--full", is_flag=True, help="Re-read every image, even those that look unchanged.")
@click.pass_context
def scan(ctx: click.Context, folder: str | None, db_path: str | None, as_json: bool, full: bool) -> None:
    """Bring the catalog in step with FOLDER (default: collection.path) and print a summary."""
    from .scanner import ScanError, list_artworks, scan_collection

    folder_path = _folder(ctx, folder)
    db = open_database(ctx, db_path, check="quick_check")  # rebuilding from the folder heals it
    bar = _Bar(enabled=sys.stdout.isatty() and not as_json)
    try:
        summary = scan_collection(db, folder_path, _catalog_config(ctx), progress=bar, force=full)
    except ScanError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        bar.close()
    if as_json:
        artworks = [_artwork_json(a) for a in list_artworks(db)]
        click.echo(
            json.dumps({"summary": summary.as_dict(), "artworks": artworks}, ensure_ascii=False, indent=2)
        )
    else:
        _print_summary(summary)
    db.close()


@catalog.command("list")
@click.option(
    "--db", "db_path", type=click.Path(dir_okay=False), help="Database file (default: store.database)."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of artwork objects.")
@click.option("--status", type=click.Choice(STATUSES), help="Only artworks with this status.")
@click.pass_context
def list_cmd(ctx: click.Context, db_path: str | None, as_json: bool, status: str | None) -> None:
    """List the artworks of the catalog (invalid ones with the reason)."""
    from .scanner import list_artworks

    db = open_database(ctx, db_path)
    artworks = [a for a in list_artworks(db) if status is None or a["status"] == status]
    db.close()
    if as_json:
        click.echo(json.dumps([_artwork_json(a) for a in artworks], ensure_ascii=False, indent=2))
        return
    if not artworks:
        click.echo("The catalog is empty: run `art2mus catalog scan FOLDER`.")
        return
    for a in artworks:
        who = ", ".join(x for x in (a["artist"], a["year"]) if x)
        line = f"{a['status']:<8} {a['path']}  {a['title']}" + (f" — {who}" if who else "")
        click.echo(line)
        if a["status"] == ArtworkStatus.INVALID:
            click.echo(f"{'':<9}reason: {a['reason']}")
    counts = {s: sum(a["status"] == s for a in artworks) for s in STATUSES}
    click.echo(", ".join(f"{n} {s}" for s, n in counts.items()))


@catalog.command()
@click.argument("folder", required=False, type=click.Path(file_okay=False))
@click.option(
    "--db", "db_path", type=click.Path(dir_okay=False), help="Database file (default: store.database)."
)
@click.option("--polling", is_flag=True, help="Poll the folder instead of OS events (network shares).")
@click.pass_context
def watch(ctx: click.Context, folder: str | None, db_path: str | None, polling: bool) -> None:
    """Keep the catalog in step with FOLDER until interrupted (Ctrl-C or SIGTERM)."""
    from .scanner import ScanError
    from .watcher import CatalogWatcher

    folder_path = _folder(ctx, folder)
    db = open_database(ctx, db_path)
    stop = threading.Event()

    def changed(summary) -> None:
        _print_summary(summary)
        sys.stdout.flush()

    watcher = CatalogWatcher(db, folder_path, _catalog_config(ctx), on_change=changed, polling=polling)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        watcher.start()
    except ScanError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Watching {folder_path.resolve()} (Ctrl-C to stop)")
    sys.stdout.flush()  # a pipe (systemd's journal) would otherwise hold it back
    first_reported = False
    try:
        while not stop.wait(0.2):
            first = watcher.last_summary
            if not first_reported and first is not None:
                first_reported = True
                if not first.changed:  # (a changed one was printed by the callback)
                    changed(first)
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
        db.close()
