"""Bad configuration files and paths that cannot work: each refused with a message naming the
file, the key (or line and column) and the value, never with a traceback (issue 15, item 5)."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from art2mus.cli import main
from engine.config import ConfigError, hash_pin, load_config, parse_listen
from engine.store import Database

DEMO = Path(__file__).resolve().parent.parent / "content" / "demo"
NOBODY = 65534


def write(folder: Path, text: str | bytes, name: str = "art2mus.toml") -> Path:
    path = folder / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[engine]\nstale_seconds = nan\n", "engine.stale_seconds"),
        ("[audio]\nvolume = inf\n", "audio.volume"),
        ("[audio]\ncrossfade_seconds = -inf\n", "audio.crossfade_seconds"),
        ("[[audio.quiet_hours]]\nvolume = nan\n", "audio.quiet_hours[0].volume"),
    ],
)
def test_non_finite_numbers_are_refused(tmp_path, text, key):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    message = str(err.value)
    assert f"key '{key}'" in message and "a finite number" in message and str(tmp_path) in message


def test_a_byte_that_is_not_utf8_is_named_with_line_and_column(tmp_path):
    # "é" in Latin-1 (0xe9), as a Windows editor may save it, on line 3, column 12 (after `path = "Caf`).
    path = write(tmp_path, b'# ok\n[collection]\npath = "Caf\xe9"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value) == (f"{path}: line 3, column 12: byte 0xe9 is not UTF-8; save the file as UTF-8")


def test_the_column_counts_characters_not_bytes(tmp_path):
    path = write(tmp_path, '[collection]\npath = "ü\xff"\n'.encode().replace(b"\xc3\xbf", b"\xff"))
    with pytest.raises(ConfigError, match="line 2, column 10: byte 0xff"):
        load_config(path)


def test_a_byte_order_mark_is_named(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbf[audio]\nvolume = 0.5\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(
        f"{path}: line 1, column 1: the file starts with a UTF-8 byte-order mark"
    )


def test_toml_syntax_errors_keep_their_line_and_column(tmp_path):
    path = write(tmp_path, "[audio]\nvolume = = 1\n")
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 2, column 10"):
        load_config(path)


@pytest.mark.parametrize(
    ("listen", "ok"),
    [
        ("127.0.0.1:8765", ("127.0.0.1", 8765)),
        ("[::1]:80", ("::1", 80)),
        ("localhost:9000", ("localhost", 9000)),
        ("127.0.0.1", None),
        ("127.0.0.1:0", None),
        ("127.0.0.1:70000", None),
        ("example.org:80", None),
    ],
)
def test_health_listen_is_host_and_port(tmp_path, listen, ok):
    path = write(tmp_path, f'[health]\nlisten = "{listen}"\n')
    if ok is None:
        with pytest.raises(ConfigError, match=r"key 'health.listen' is .*HOST:PORT"):
            load_config(path)
    else:
        assert parse_listen(load_config(path).health.listen) == ok


def _good_config(folder: Path, **extra: str) -> Path:
    """A config with a real collection and a database folder that can work."""
    lines = [f'[collection]\npath = "{extra.get("collection", DEMO)}"']
    lines.append(f'[store]\ndatabase = "{extra.get("database", folder / "db" / "art2mus.db")}"')
    lines.append(f'[kiosk]\npin_hash = "{hash_pin("8642", salt="t", iterations=1000)}"')
    return write(folder, "\n".join(lines) + "\n", name="site.toml")


def test_config_check_checks_the_file_of_the_global_option_and_the_env(tmp_path):
    bad = write(tmp_path, "[audio]\nvolume = nan\n", name="bad.toml")
    by_option = CliRunner().invoke(main, ["--config", str(bad), "config", "check"])
    assert by_option.exit_code == 1 and f"{bad}: key 'audio.volume'" in by_option.output
    by_env = CliRunner().invoke(main, ["config", "check"], env={"ART2MUS_CONFIG": str(bad)})
    assert by_env.exit_code == 1 and f"{bad}: key 'audio.volume'" in by_env.output
    good = _good_config(tmp_path)
    ok = CliRunner().invoke(main, ["config", "check"], env={"ART2MUS_CONFIG": str(good)})
    assert ok.exit_code == 0, ok.output
    assert f"{good}: OK" in ok.output and "default curator PIN" not in ok.output


def test_config_check_warns_about_the_default_pin(tmp_path):
    path = write(tmp_path, f'[collection]\npath = "{DEMO}"\n[store]\ndatabase = "{tmp_path / "a.db"}"\n')
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 0 and "kiosk.pin_hash is the default curator PIN" in result.output


def test_config_check_refuses_a_missing_collection_folder(tmp_path):
    missing = tmp_path / "not-mounted"
    path = _good_config(tmp_path, collection=str(missing))
    result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 1
    assert f"{path}: key 'collection.path' is '{missing}': the folder does not exist" in result.output
    assert "Traceback" not in result.output


# -- permissions: asked as an ordinary user (root may write anything) --------------------------


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temp folder that an unprivileged user can reach (pytest's tmp_path is root's 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="art2mus-perm-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for p in folder.rglob("*"):
            if p.is_dir():
                p.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """Run the block as 'nobody' when the tests run as root, so that modes take effect."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_config_check_refuses_an_unwritable_database_folder(shared_tmp):
    folder = shared_tmp / "db"
    folder.mkdir(mode=0o755)
    if os.geteuid() != 0:
        folder.chmod(0o555)
    path = _good_config(shared_tmp, database=str(folder / "art2mus.db"))
    with unprivileged():
        result = CliRunner().invoke(main, ["config", "check", str(path)])
    assert result.exit_code == 1, result.output
    assert f"key 'store.database' is '{folder / 'art2mus.db'}': its folder {folder} is not writable" in (
        result.output
    )


def test_a_read_only_database_file_is_one_line_not_a_traceback(shared_tmp):
    folder = shared_tmp / "db"
    folder.mkdir()
    folder.chmod(0o777)
    database = folder / "art2mus.db"
    Database(database).close()
    database.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    path = _good_config(shared_tmp, database=str(database))
    # Python may live in root's home, which 'nobody' cannot read: a first scan loads every
    # module the scan needs while the test is still root.
    CliRunner().invoke(main, ["catalog", "scan", str(DEMO), "--db", str(shared_tmp / "warm.db")])
    with unprivileged():
        check = CliRunner().invoke(main, ["config", "check", str(path)])
        scan = CliRunner().invoke(main, ["--config", str(path), "catalog", "scan", str(DEMO)])
    assert check.exit_code == 1 and "the database file is read-only for this user" in check.output
    assert scan.exit_code == 1, scan.output
    assert scan.exception is None or isinstance(scan.exception, SystemExit), scan.exception
    assert f"Error: {database}: is read-only for this user" in scan.output
    assert "Traceback" not in scan.output and len(scan.output.strip().splitlines()) <= 2
