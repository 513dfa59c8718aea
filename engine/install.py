"""Installing the systemd units for one user and one configuration (``art2mus install-service``).

The units in ``systemd/`` are complete, verifiable files written for the defaults (user
``art2mus``, the program in ``/opt/art2mus/.venv``, ``/etc/art2mus/art2mus.toml``, the
database under ``/var/lib/art2mus``). Installing replaces exactly those values with the real
ones and writes a file only when its content changed, so running it again changes nothing
(idempotent) and a changed configuration path or user rewrites only what differs.

The curator PIN: an installation must not keep the shipped default, which is in the
documentation. :func:`set_pin_hash` writes the installer's own PIN hash into the
configuration file's ``[kiosk]`` table, keeping the rest of the file (comments included).
"""

from __future__ import annotations

import pwd
import re
from dataclasses import dataclass
from pathlib import Path

UNITS_DIR = Path(__file__).resolve().parent.parent / "systemd"
UNIT_NAMES = ("art2mus-engine.service", "art2mus-kiosk.service", "art2mus.target")
SYSTEM_UNIT_DIR = Path("/etc/systemd/system")


@dataclass(frozen=True)
class Target:
    """What the units are rendered for."""

    user: str
    home: Path
    uid: int
    executable: Path  # the art2mus console script
    workdir: Path
    config: Path
    database_dir: Path

    @classmethod
    def for_user(cls, user: str, *, executable: Path, config: Path, database: Path) -> Target:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            raise ValueError(f"no user {user!r} on this machine (create it first: adduser {user})") from None
        return cls(
            user=user,
            home=Path(entry.pw_dir),
            uid=entry.pw_uid,
            executable=executable,
            workdir=executable.parent.parent.parent,  # PROJECT/.venv/bin/art2mus -> PROJECT
            config=config,
            database_dir=database.parent,
        )


def render(name: str, target: Target) -> str:
    """The unit ``name`` of ``systemd/`` with the target's user and paths."""
    text = (UNITS_DIR / name).read_text(encoding="utf-8")
    # Longest first: /opt/art2mus/.venv/bin/art2mus before /opt/art2mus.
    replacements = [
        ("/opt/art2mus/.venv/bin/art2mus", str(target.executable)),
        ("/etc/art2mus/art2mus.toml", str(target.config)),
        ("/var/lib/art2mus", str(target.database_dir)),
        ("/home/art2mus", str(target.home)),
        ("/run/user/1000", f"/run/user/{target.uid}"),
        ("/opt/art2mus", str(target.workdir)),
    ]
    for old, new in replacements:
        text = text.replace(old, new)
    return re.sub(r"(?m)^User=art2mus$", f"User={target.user}", text)


@dataclass(frozen=True)
class Installed:
    path: Path
    changed: bool


def install_units(target: Target, unit_dir: Path = SYSTEM_UNIT_DIR) -> list[Installed]:
    """Write the rendered units into ``unit_dir``; only files whose content differs are written."""
    unit_dir.mkdir(parents=True, exist_ok=True)
    done = []
    for name in UNIT_NAMES:
        text = render(name, target)
        path = unit_dir / name
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if old != text:
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.chmod(0o644)
            tmp.replace(path)
        done.append(Installed(path, old != text))
    return done


_KIOSK_HEADER = re.compile(r"(?m)^\[kiosk\][ \t]*(#.*)?$")
_NEXT_TABLE = re.compile(r"(?m)^\[")
_PIN_LINE = re.compile(r"(?m)^[ \t]*pin_hash[ \t]*=.*\n?")


def set_pin_hash(text: str, pin_hash: str) -> str:
    """``text`` (a TOML configuration) with ``kiosk.pin_hash = pin_hash``; other lines kept."""
    line = f'pin_hash = "{pin_hash}"\n'
    header = _KIOSK_HEADER.search(text)
    if header is None:
        return text + ("" if text.endswith("\n") or not text else "\n") + f"\n[kiosk]\n{line}"
    start = header.end() + 1
    nxt = _NEXT_TABLE.search(text, start)
    end = nxt.start() if nxt else len(text)
    body = _PIN_LINE.sub("", text[start:end])
    return text[:start] + line + body + text[end:]
