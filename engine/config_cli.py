"""``art2mus config``: check a configuration file, make a PIN hash."""

from __future__ import annotations

import dataclasses

import click

from .config import ConfigError, hash_pin, load_config


@click.group()
def config() -> None:
    """Configuration tools."""


@config.command("check")
@click.argument("path", type=click.Path(dir_okay=False), required=False)
def check(path: str | None) -> None:
    """Validate PATH (default: the built-in content/art2mus.toml) and print its values."""
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{cfg.source}: OK")
    for section in (f.name for f in dataclasses.fields(cfg) if not f.metadata.get("internal")):
        for key, value in vars(getattr(cfg, section)).items():
            if key != "pin_hash":
                click.echo(f"  {section}.{key} = {value!r}")


@config.command("hash-pin")
@click.option("--pin", prompt=True, hide_input=True, confirmation_prompt=True)
def hash_pin_cmd(pin: str) -> None:
    """Print the value for kiosk.pin_hash for a new curator PIN."""
    if not (pin.isdigit() and 4 <= len(pin) <= 12):
        raise click.BadParameter("the PIN must be 4 to 12 digits", param_hint="--pin")
    click.echo(hash_pin(pin))
