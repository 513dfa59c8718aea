"""What every ``art2mus`` subcommand shares: the configuration and the database."""

from __future__ import annotations

from pathlib import Path

import click


class CliState:
    """Shared by subcommands: the configuration, read once and only when a command needs it."""

    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self._config = None

    @property
    def config(self):
        if self._config is None:
            from engine.config import ConfigError, load_config

            try:
                self._config = load_config(self.config_path)
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from None
        return self._config


def get_config(ctx: click.Context):
    """The validated configuration for a subcommand (``ctx.obj`` set by ``main``)."""
    state = ctx.find_object(CliState)
    return state.config if state is not None else CliState(None).config


def open_database(ctx: click.Context, db_path: str | Path | None):
    """The store at ``db_path`` (``--db``), or at ``store.database`` from the configuration."""
    from engine.store import Database, SchemaError, StoreError

    path = Path(db_path) if db_path else get_config(ctx).store.database
    try:
        return Database(path)
    except (StoreError, SchemaError) as exc:
        raise click.ClickException(str(exc)) from None
