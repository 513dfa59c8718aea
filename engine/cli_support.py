"""What the ``art2mus`` subcommands share: the configuration, the database, the engine choice."""

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


def open_database(ctx: click.Context, db_path: str | Path | None, check: str = "open"):
    """The store at ``db_path`` (``--db``), or at ``store.database`` from the configuration.

    A damaged file is set aside and made anew (engine/store/health.py); ``check`` is how
    thoroughly it is looked at first ("open", "quick_check": the engine service's start).
    """
    from engine.store import Database, SchemaError, StoreError

    path = Path(db_path) if db_path else get_config(ctx).store.database
    try:
        return Database(path, check=check)
    except (StoreError, SchemaError) as exc:
        raise click.ClickException(str(exc)) from None


def engine_for(config, name: str | None, model: Path | None = None):
    """The engine asked for on the command line (``--engine``, ``--model``) or by the
    configuration, and why (``generate``, ``pregenerate``, ``engine serve``)."""
    from engine.engines.registry import EngineLoadError, create_engine, resolve_engine

    if model is not None:
        config.engine.model = model.expanduser().resolve()
    try:
        if name and name != "auto":
            engine = create_engine(name, config)
            return engine, f"{engine.name} engine (--engine {name})"
        return resolve_engine(config)
    except EngineLoadError as exc:
        raise click.ClickException(str(exc)) from None


def parse_gpus(gpus: str) -> list[str]:
    """The devices named by ``--gpus`` (a count, 'all', a list such as 0,2, or cpu:N)."""
    from engine.worker_pool import parse_devices

    try:
        return parse_devices(gpus)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--gpus") from None
