"""The ``art2mus`` command: the root group and where each subcommand lives.

Each subcommand is defined next to the code it drives (``cli.py`` in its package, or
``NAME_cli.py`` where a package drives several; docs/architecture.md has the table) and is
imported only when invoked, so that ``art2mus catalog list`` starts in a fraction of a second
and never imports Qt or torch. This package is the only one that may import ``installation``,
``engine`` and ``training`` together, and it does so only in :meth:`LazyGroup.get_command`.
"""

from __future__ import annotations

import importlib
import logging

import click

from engine.cli_support import CliState, describe_store_fault

# name -> ("module:attribute", one-line help shown by `art2mus --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "audio": ("installation.audio.cli:audio", "List output devices; play audio files to test speakers."),
    "capture": (
        "engine.capture.cli:capture",
        "Capture a painting from a camera, video or photo; straighten, recognise, queue its music.",
    ),
    "catalog": ("engine.catalog.cli:catalog", "Scan, list and watch a collection folder."),
    "config": ("engine.config_cli:config", "Check a configuration file; hash a curator PIN."),
    "engine": ("engine.service_cli:engine_group", "The engine service: catalog sync and clip generation."),
    "generate": ("engine.generate_cli:generate", "Make a clip for each image file (no database needed)."),
    "kiosk": ("installation.kiosk.cli:kiosk", "Open the touchscreen kiosk (demo mode with --collection)."),
    "pregenerate": ("engine.generate_cli:pregenerate", "Fill the clip cache for the whole collection."),
    "status": ("engine.health_cli:status", "What runs and how: engine, clips, audio, disk, errors (--json)."),
    "install-service": (
        "engine.install_cli:install_service",
        "Install the systemd units for a user and a configuration.",
    ),
    "models": ("engine.engines.diffusion.cli:models", "Build, make and check Art2Mus model bundles."),
    "store": ("engine.store.cli:store", "Prune clips no longer needed and hand the space back."),
    "train": ("training.cli:train", "Train the Image Aligner; export it as a model bundle."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, attr = COMMANDS[name][0].split(":")
        return getattr(importlib.import_module(module_name), attr)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            # A read-only, full or damaged database is the machine's fault, not a bug: one
            # line naming the file (under systemd a traceback per restart floods the journal).
            message = describe_store_fault(exc, ctx)
            if message is None:
                raise
            raise click.ClickException(message) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="ART2MUS_CONFIG",
    help="Configuration file (default: content/art2mus.toml; env ART2MUS_CONFIG).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="art2mus")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """Art2Mus exhibition player: every artwork gets its own ambient music."""
    level = logging.INFO if verbose == 1 else logging.DEBUG if verbose > 1 else logging.WARNING
    from engine.log_format import configure

    configure(level)  # journald priorities under systemd (engine/log_format.py)
    ctx.obj = CliState(config_path)
