"""`art2mus install-service`: the units for a user and a configuration, idempotent, verified by
systemd-analyze; never with the shipped curator PIN (issue 15, items 7-8)."""

from __future__ import annotations

import getpass
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from art2mus.cli import main
from engine.config import DEFAULT_PIN, hash_pin, load_config, uses_default_pin, verify_pin
from engine.install import UNIT_NAMES, set_pin_hash

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "content" / "demo"
USER = getpass.getuser()


def site_config(tmp_path: Path, *, pin_hash: str | None = None) -> Path:
    text = (
        "# the installer's file\n"
        f'[collection]\npath = "{DEMO}"\n\n[store]\ndatabase = "{tmp_path / "db" / "art2mus.db"}"\n\n'
        "[kiosk]\n# Curator PIN, hashed.\nfullscreen = true\n"
    )
    if pin_hash:
        text += f'pin_hash = "{pin_hash}"\n'
    text += "\n[audio]\nvolume = 0.7\n"
    path = tmp_path / "art2mus.toml"
    path.write_text(text)
    return path


def install(config: Path, unit_dir: Path, *extra: str, input: str | None = None):
    args = [
        "--config",
        str(config),
        "install-service",
        "--user",
        USER,
        "--unit-dir",
        str(unit_dir),
        "--no-enable",
    ]
    return CliRunner().invoke(main, [*args, *extra], input=input)


def test_the_default_pin_is_refused_and_the_installers_own_is_written(tmp_path):
    config = site_config(tmp_path)
    units = tmp_path / "units"
    refused = install(config, units, "--pin", DEFAULT_PIN)
    assert refused.exit_code == 2 and "not the shipped default" in refused.output
    assert not units.exists()
    asked = install(config, units, input="8642\n8642\n")
    assert asked.exit_code == 0, asked.output
    assert "kiosk.pin_hash set to your PIN" in asked.output
    cfg = load_config(config)
    assert verify_pin("8642", cfg.kiosk.pin_hash) and not uses_default_pin(cfg)
    text = config.read_text()
    assert "# the installer's file" in text and "volume = 0.7" in text and text.count("pin_hash =") == 1
    assert sorted(p.name for p in units.iterdir()) == sorted(UNIT_NAMES)


def test_installing_again_changes_nothing(tmp_path):
    config = site_config(tmp_path, pin_hash=hash_pin("8642", salt="t", iterations=1000))
    units = tmp_path / "units"
    first = install(config, units)
    assert first.exit_code == 0, first.output
    assert first.output.count(": written") == 3
    engine = (units / "art2mus-engine.service").read_text()
    assert f"User={USER}\n" in engine and f"--config {config.resolve()} engine serve" in engine
    assert f"ReadWritePaths={tmp_path / 'db'}\n" in engine and "/opt/art2mus" not in engine
    before = {p.name: p.stat().st_mtime_ns for p in units.iterdir()}
    second = install(config, units)
    assert second.exit_code == 0 and second.output.count(": unchanged") == 3
    assert {p.name: p.stat().st_mtime_ns for p in units.iterdir()} == before
    # A PIN on the command line when the file has its own is refused, not silently changed.
    assert install(config, units, "--pin", "1357").exit_code == 2


def test_install_service_needs_a_configuration_file_and_a_user(tmp_path):
    no_config = CliRunner().invoke(
        main, ["install-service", "--user", USER, "--no-enable"], env={"ART2MUS_CONFIG": ""}
    )
    assert no_config.exit_code == 2 and "name the configuration" in no_config.output
    config = site_config(tmp_path, pin_hash=hash_pin("8642", salt="t", iterations=1000))
    nobody = CliRunner().invoke(
        main, ["--config", str(config), "install-service", "--user", "no-such-user-xyz", "--no-enable"]
    )
    assert nobody.exit_code == 2 and "no user 'no-such-user-xyz'" in nobody.output


def test_set_pin_hash_keeps_the_rest_of_the_file():
    text = '[kiosk]\npin_hash = "old"\nfullscreen = true\n\n[audio]\nvolume = 0.5\n'
    assert (
        set_pin_hash(text, "new") == '[kiosk]\npin_hash = "new"\nfullscreen = true\n\n[audio]\nvolume = 0.5\n'
    )
    assert (
        set_pin_hash("[audio]\nvolume = 0.5\n", "new")
        == '[audio]\nvolume = 0.5\n\n[kiosk]\npin_hash = "new"\n'
    )


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (apt: systemd)")
def test_the_installed_units_verify(tmp_path):
    config = site_config(tmp_path, pin_hash=hash_pin("8642", salt="t", iterations=1000))
    units = tmp_path / "units"
    assert install(config, units).exit_code == 0
    for name in UNIT_NAMES:
        text = (units / name).read_text()
        if name.endswith(".service"):
            assert "Type=notify\n" in text and "WatchdogSec=" in text and "StartLimitBurst=" in text
            assert "NoNewPrivileges=true" in text and "PrivateTmp=true" in text and "ProtectSystem=" in text
            assert "PartOf=art2mus.target" in text
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(units / n) for n in UNIT_NAMES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
