"""Can a valid configuration work on this machine? The paths it names, checked.

:func:`engine.config.load_config` checks what the file says (keys, types, ranges); it does not
refuse a collection folder that is missing, because the engine service keeps polling for one
on a drive not mounted yet. ``art2mus config check`` (and ``install-service``) ask here as well,
so an installer hears at once that the folder is not there or that the database cannot be
written, instead of finding out from a service that starts and never shows anything.

Permissions are asked of the kernel (``os.access``) for the user running the check: run it as
the user the services run as.
"""

from __future__ import annotations

import os
from pathlib import Path

from .config import Config


def _access(path: Path, mode: int) -> bool:
    # The effective ids: those a service started by systemd with User= runs with (and the
    # ones a test switches to when it drops root).
    return os.access(path, mode, effective_ids=os.access in os.supports_effective_ids)


def path_problems(config: Config) -> list[str]:
    """One line per path of ``config`` that cannot work (empty: all can); each names the
    file, the key and the value."""
    where = str(config.source) if config.source is not None else "built-in defaults"
    problems: list[str] = []

    def bad(key: str, value: Path, why: str) -> None:
        problems.append(f"{where}: key '{key}' is '{value}': {why}")

    folder = config.collection.path
    if not folder.exists():
        bad("collection.path", folder, "the folder does not exist")
    elif not folder.is_dir():
        bad("collection.path", folder, "is not a folder")
    elif not _access(folder, os.R_OK | os.X_OK):
        bad("collection.path", folder, "the folder cannot be read by this user")

    database = config.store.database
    why = _database_problem(database)
    if why:
        bad("store.database", database, why)

    captures = config.capture.folder
    why = _writable_folder_problem(captures)
    if why:
        bad("capture.folder", captures, why)

    model = config.engine.model
    if model is not None and not model.is_dir():
        bad("engine.model", model, "the model bundle folder does not exist")
    soundfont = config.engine.soundfont
    if soundfont is not None and not soundfont.is_file():
        bad("engine.soundfont", soundfont, "the SoundFont file does not exist")
    return problems


def _writable_folder_problem(folder: Path) -> str:
    """Why the kiosk could not write camera captures into ``folder`` ('' when it can)."""
    try:
        return _folder_problem(folder)
    except OSError as exc:  # e.g. under another user's home folder
        return f"cannot be looked at by this user ({exc.strerror or exc})"


def _folder_problem(folder: Path) -> str:
    if folder.exists():
        if not folder.is_dir():
            return "is not a folder"
        return "" if _access(folder, os.W_OK | os.X_OK) else "the folder is not writable by this user"
    existing = next((p for p in folder.parents if p.exists()), None)
    if existing is None or not existing.is_dir() or not _access(existing, os.W_OK | os.X_OK):
        return f"the folder does not exist and cannot be created under {existing}"
    return ""


def _database_problem(database: Path) -> str:
    """Why the database at ``database`` cannot be opened for writing ('' when it can)."""
    if database.is_dir():
        return "is a folder, not a database file"
    folder = database.parent
    if folder.is_dir():
        # SQLite in WAL mode creates ART2MUS.db-wal and -shm next to the file: the folder
        # must be writable even when the database file is.
        if not _access(folder, os.W_OK | os.X_OK):
            return f"its folder {folder} is not writable by this user (SQLite needs it for the -wal file)"
    else:
        existing = next((p for p in folder.parents if p.exists()), None)
        if existing is None or not existing.is_dir():
            return f"its folder {folder} cannot be created"
        if not _access(existing, os.W_OK | os.X_OK):
            return f"its folder {folder} does not exist and {existing} is not writable by this user"
    if database.exists():
        if not _access(database, os.R_OK):
            return "the database file cannot be read by this user"
        if not _access(database, os.W_OK):
            return "the database file is read-only for this user (both services write it)"
    return ""
