from pathlib import Path

import pytest

from engine.config import (
    DEFAULT_CONFIG,
    DEFAULT_PIN_HASH,
    ConfigError,
    hash_pin,
    load_config,
    verify_pin,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "art2mus.toml"
    path.write_text(text)
    return path


def test_default_file_loads_and_resolves_paths():
    cfg = load_config(DEFAULT_CONFIG)
    assert cfg.collection.path == DEFAULT_CONFIG.parent / "demo"
    assert cfg.collection.path.is_dir()
    assert cfg.audio.crossfade_seconds == 4.0


def test_empty_file_gives_defaults(tmp_path):
    cfg = load_config(write(tmp_path, ""))
    assert cfg.engine.duration == 30.0 and cfg.diffusion.duration == 10.0
    assert cfg.collection.path == tmp_path / "demo"


def test_unknown_key_names_file_and_key(tmp_path):
    path = write(tmp_path, "[audio]\ncrosfade_seconds = 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in str(err.value)
    assert "audio.crosfade_seconds" in str(err.value)
    assert "crossfade_seconds" in str(err.value)  # the expected keys are listed


def test_unknown_section(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'sound'"):
        load_config(write(tmp_path, "[sound]\nvolume = 1\n"))


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("[audio]\nvolume = 1.5\n", "audio.volume", "from 0.0 to 1.0"),
        ("[audio]\nvolume = 'loud'\n", "audio.volume", "a number"),
        ("[engine]\nseed = 1.5\n", "engine.seed", "an integer"),
        ("[engine]\nname = 'gpu'\n", "engine.name", "one of 'auto', 'default', 'art2mus'"),
        ("[kiosk]\nfullscreen = 'yes'\n", "kiosk.fullscreen", "true or false"),
        ("[[audio.quiet_hours]]\nstart = '25:00'\n", "audio.quiet_hours[0].start", "HH:MM"),
        ("[kiosk]\npin_hash = '1234'\n", "kiosk.pin_hash", "hash-pin"),
    ],
)
def test_bad_values_are_refused_with_key_and_expectation(tmp_path, text, key, expected):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert f"'{key}'" in str(err.value)
    assert expected in str(err.value)


def test_malformed_toml_names_file(tmp_path):
    path = write(tmp_path, "[audio\nvolume = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML") as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_quiet_hours_parse(tmp_path):
    cfg = load_config(
        write(tmp_path, '[[audio.quiet_hours]]\nstart = "17:30"\nend = "18:00"\nvolume = 0.3\n')
    )
    assert cfg.audio.quiet_hours[0].start == "17:30"
    assert cfg.audio.quiet_hours[0].volume == 0.3


def test_pin_hash_roundtrip():
    assert verify_pin("2468", DEFAULT_PIN_HASH)
    assert not verify_pin("2469", DEFAULT_PIN_HASH)
    made = hash_pin("9999")
    assert verify_pin("9999", made) and not verify_pin("2468", made)


def test_config_check_command(tmp_path):
    from click.testing import CliRunner

    from art2mus.cli import main

    good = CliRunner().invoke(main, ["config", "check", str(DEFAULT_CONFIG)])
    assert good.exit_code == 0 and f"{DEFAULT_CONFIG}: OK" in good.output
    assert "diffusion.device" in good.output and "kiosk.pin_hash =" not in good.output
    bad = write(tmp_path, "[kiosk]\nidle_seconds = 1\n")
    result = CliRunner().invoke(main, ["config", "check", str(bad)])
    assert result.exit_code == 1 and "'kiosk.idle_seconds'" in result.output and str(bad) in result.output
