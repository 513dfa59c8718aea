"""What the ``art2mus`` subcommands share: the configuration, the database, the engine choice."""

from __future__ import annotations

from pathlib import Path

import click

# Options several commands share, defined once so that their names, types and help agree.
db_option = click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False),
    help="Database file (default: store.database from the configuration).",
)
model_option = click.option(
    "--model",
    type=click.Path(file_okay=False, path_type=Path),
    help="Art2Mus model bundle folder (default: engine.model from the configuration).",
)
gpus_option = click.option(
    "--gpus",
    help="Worker processes, one per GPU: a count, 'all', a list such as 0,2, or cpu:N for N CPU processes.",
)


class CliState:
    """Shared by subcommands: the configuration, read once and only when a command needs it."""

    def __init__(self, config_path: str | None):
        self.config_path = config_path
        self._config = None
        # The database a command opened (open_database), named when it turns out unusable.
        self.db_path: Path | None = None

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
    from sqlalchemy.exc import DBAPIError

    from engine.store import Database, SchemaError, StoreError

    path = Path(db_path) if db_path else get_config(ctx).store.database
    state = ctx.find_object(CliState)
    if state is not None:
        state.db_path = path
    try:
        return Database(path, check=check)
    except (StoreError, SchemaError) as exc:
        cause = exc.__cause__
        why = describe_store_fault(cause, ctx) if cause is not None else None
        raise click.ClickException(why or str(exc)) from None
    except DBAPIError as exc:
        # E.g. a read-only file ("attempt to write a readonly database") or a damaged one:
        # a plain line naming the file, not SQLAlchemy's 100-line traceback.
        why = describe_store_fault(exc, ctx)  # the fault in plain words, when it is a known one
        raise click.ClickException(why or f"{path}: cannot open the database: {exc.orig}") from None


# SQLite's words for a database this process cannot use: the machine's fault, said in one
# line (which file, what to do), never a traceback.
_STORE_FAULTS = {
    "attempt to write a readonly database": "is read-only for this user; both services must write "
    "it and its folder (check their owner and mode)",
    "unable to open database file": "cannot be opened (missing folder or no permission)",
    "database or disk is full": "cannot be written: the disk is full",
    "disk i/o error": "cannot be read or written (disk I/O error)",
    "file is not a database": "is damaged or not an SQLite database",
    "database disk image is malformed": "is damaged (malformed database image)",
}


def describe_store_fault(exc: BaseException, ctx: click.Context | None = None) -> str | None:
    """One line for a database error that comes from the machine (read-only file, full disk,
    damaged file), naming the file; None for anything else (a bug: let its traceback show)."""
    import sqlite3

    orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's error
    error = orig if isinstance(orig, sqlite3.Error) else exc
    if not isinstance(error, sqlite3.Error):
        return None
    text = str(error).lower()
    why = next((words for needle, words in _STORE_FAULTS.items() if needle in text), None)
    if why is None:
        return None
    state = ctx.find_object(CliState) if ctx is not None else None
    path = state.db_path if state is not None else None
    return f"{path if path is not None else 'the database'}: {why} ({error})"


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
