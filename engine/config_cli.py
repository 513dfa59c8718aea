"""``art2mus config``: check a configuration file, make a PIN hash."""

from __future__ import annotations

import dataclasses

import click

from .cli_support import CliState
from .config import ConfigError, hash_pin, load_config, uses_default_pin
from .config_checks import path_problems


@click.group()
def config() -> None:
    """Configuration tools."""


@config.command("check")
@click.argument("path", type=click.Path(dir_okay=False), required=False)
@click.pass_context
def check(ctx: click.Context, path: str | None) -> None:
    """Validate PATH and print its values, then check that its paths can work.

    PATH defaults to the file of the global --config option or ART2MUS_CONFIG, else the
    built-in content/art2mus.toml. Exits 1 on a bad key or value, or when the collection folder
    is missing or unreadable or the database cannot be written by this user.
    """
    state = ctx.find_object(CliState)
    if path is None and state is not None:
        path = state.config_path
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{cfg.source}: OK")
    for section in (f.name for f in dataclasses.fields(cfg) if not f.metadata.get("internal")):
        for key, value in vars(getattr(cfg, section)).items():
            if key != "pin_hash":
                click.echo(f"  {section}.{key} = {value!r}")
    if uses_default_pin(cfg):
        click.echo(
            f"warning: {cfg.source}: kiosk.pin_hash is the default curator PIN; "
            "set your own with `art2mus config hash-pin`",
            err=True,
        )
    problems = path_problems(cfg)
    if problems:
        raise click.ClickException("\n".join(problems))


@config.command("hash-pin")
@click.option("--pin", prompt=True, hide_input=True, confirmation_prompt=True)
def hash_pin_cmd(pin: str) -> None:
    """Print the value for kiosk.pin_hash for a new curator PIN."""
    if not (pin.isdigit() and 4 <= len(pin) <= 12):
        raise click.BadParameter("the PIN must be 4 to 12 digits", param_hint="--pin")
    click.echo(hash_pin(pin))
