"""``art2mus install-service``: the systemd units for a user and a configuration, installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import click

from .cli_support import CliState


@click.command("install-service")
@click.option(
    "--user", "user", required=True, help="The account both services run as (it logs in on the display)."
)
@click.option(
    "--unit-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default="/etc/systemd/system",
    show_default=True,
    help="Where the units go.",
)
@click.option(
    "--pin", help="Your own curator PIN (4-12 digits); asked for when the configuration has the default."
)
@click.option("--no-enable", is_flag=True, help="Only write the units (no systemctl daemon-reload / enable).")
@click.pass_context
def install_service(ctx: click.Context, user: str, unit_dir: Path, pin: str | None, no_enable: bool) -> None:
    """Install art2mus-engine.service, art2mus-kiosk.service and art2mus.target for USER.

    Needs the configuration file as the global option (art2mus --config FILE install-service):
    the units run with that file. Refuses the shipped default curator PIN: if FILE still has
    it, asks for your own and writes its hash into FILE. Safe to run again: only files whose
    content changes are written. Then enables art2mus.target (start it with systemctl start
    art2mus.target, or reboot).
    """
    from .config import DEFAULT_CONFIG, DEFAULT_PIN, ConfigError, hash_pin, load_config, uses_default_pin
    from .config_checks import path_problems
    from .install import Target, install_units, set_pin_hash

    state = ctx.find_object(CliState)
    if state is None or not state.config_path:
        raise click.UsageError("name the configuration: art2mus --config FILE install-service --user NAME")
    config_path = Path(state.config_path).resolve()
    if config_path == DEFAULT_CONFIG:
        raise click.UsageError(
            f"copy {DEFAULT_CONFIG} to /etc/art2mus/art2mus.toml and edit it; do not install the demo's"
        )
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None

    if uses_default_pin(config):
        if pin is None:
            pin = click.prompt(
                "The configuration has the shipped curator PIN; choose your own (4-12 digits)",
                hide_input=True,
                confirmation_prompt=True,
            )
        if not (pin.isdigit() and 4 <= len(pin) <= 12) or pin == DEFAULT_PIN:
            raise click.BadParameter("4 to 12 digits, and not the shipped default", param_hint="--pin")
        config_path.write_text(
            set_pin_hash(config_path.read_text(encoding="utf-8"), hash_pin(pin)), encoding="utf-8"
        )
        config = load_config(config_path)
        assert not uses_default_pin(config)
        click.echo(f"{config_path}: kiosk.pin_hash set to your PIN")
    elif pin is not None:
        raise click.BadParameter(
            "the configuration already has its own PIN; change it with `art2mus config hash-pin`",
            param_hint="--pin",
        )

    for problem in path_problems(config):
        click.echo(f"warning: {problem}", err=True)
    executable = Path(sys.argv[0]).resolve() if Path(sys.argv[0]).name == "art2mus" else None
    executable = executable or Path(shutil.which("art2mus") or Path(sys.prefix) / "bin" / "art2mus")
    try:
        target = Target.for_user(
            user, executable=executable, config=config_path, database=config.store.database
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--user") from None
    try:
        for done in install_units(target, unit_dir):
            click.echo(f"{done.path}: {'written' if done.changed else 'unchanged'}")
    except OSError as exc:
        raise click.ClickException(
            f"{unit_dir}: cannot write the units: {exc.strerror} (run with sudo)"
        ) from None
    if no_enable:
        return
    for args in (
        ["daemon-reload"],
        ["enable", "art2mus.target", "art2mus-engine.service", "art2mus-kiosk.service"],
    ):
        result = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise click.ClickException(f"systemctl {' '.join(args)} failed: {result.stderr.strip()}")
    click.echo("enabled; start now with: systemctl start art2mus.target")
