"""Listing a collection folder: image files with their stat, sidecars, and what went wrong.

The walk never follows a symbolic link into a folder it has already visited (so a link loop
ends), never opens a file, and turns every error of the file system (a folder that vanishes
mid-walk, a folder it may not read, a dangling link) into a :class:`Problem` that names the
path, so one bad corner of the folder never stops the rest.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field

from .images import SUFFIX_FORMATS
from .metadata import CATALOG_CSV, CATALOG_JSON, Problem

# Image formats curators may try that the catalog cannot read: named in the reason.
UNSUPPORTED_SUFFIXES = {
    ".gif": "GIF",
    ".bmp": "BMP",
    ".heic": "HEIC",
    ".heif": "HEIF",
    ".avif": "AVIF",
    ".jp2": "JPEG 2000",
    ".jxl": "JPEG XL",
    ".svg": "SVG",
    ".psd": "Photoshop",
    ".cr2": "camera raw",
    ".nef": "camera raw",
    ".arw": "camera raw",
    ".dng": "camera raw",
}


@dataclass
class FoundFile:
    """An image file found in the collection."""

    rel: str  # relative POSIX path as stored in the catalog (always valid UTF-8)
    abspath: str  # the path to open (may hold surrogate escapes for non-UTF-8 names)
    size: int = 0
    mtime_ns: int = 0
    inode: int = 0
    # Why the file cannot be an artwork, known before reading it (bad name, not a file, ...).
    refused: str | None = None

    @property
    def stat_key(self) -> tuple[int, int, int]:
        return (self.size, self.mtime_ns, self.inode)


@dataclass
class Listing:
    images: dict[str, FoundFile] = field(default_factory=dict)
    # Relative paths of every *.json file (sidecar candidates), catalog.json excluded.
    json_files: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)
    # Folders that could not be listed: catalog rows under them are left as they are.
    unlisted: list[str] = field(default_factory=list)


def display_path(rel: str) -> str:
    """``rel`` as valid UTF-8: undecodable bytes of a file name are shown as \\xNN."""
    try:
        rel.encode("utf-8")
        return rel
    except UnicodeEncodeError:
        return rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def sql_inode(ino: int) -> int:
    """An inode number as SQLite's signed 64-bit INTEGER."""
    return ino - (1 << 64) if ino >= (1 << 63) else ino


def _join(rel_dir: str, name: str) -> str:
    return f"{rel_dir}/{name}" if rel_dir else name


def _error_text(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop (the link points back into itself)"
    if exc.errno == errno.ENOENT:
        return "vanished during the scan, or is a link to nothing"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "cannot be read (permission denied)"
    if exc.errno == errno.ENAMETOOLONG:
        return "the path is too long for the file system"
    return f"cannot be read ({exc.strerror or exc})"


def walk_collection(root: str, subpaths: list[str] | None = None) -> Listing:
    """List images under ``root`` (or only under the relative ``subpaths``)."""
    listing = Listing()
    visited: set[tuple[int, int]] = set()
    starts = [""] if subpaths is None else subpaths
    for rel in starts:
        abspath = os.path.join(root, rel) if rel else root
        try:
            st = os.stat(abspath)
        except FileNotFoundError:
            continue  # gone: its rows become missing
        except OSError as exc:
            listing.problems.append(Problem(display_path(rel), _error_text(exc)))
            listing.unlisted.append(display_path(rel))
            continue
        if stat.S_ISDIR(st.st_mode):
            _walk_dir(root, rel, st, listing, visited)
        else:
            _add_file(listing, rel, abspath, st, top=(rel in (CATALOG_CSV, CATALOG_JSON)))
    return listing


def _walk_dir(root: str, rel_dir: str, st: os.stat_result, listing: Listing, visited: set) -> None:
    stack = [(rel_dir, st)]
    while stack:
        rel_dir, st = stack.pop()
        if (st.st_dev, st.st_ino) in visited:
            if rel_dir:
                listing.problems.append(
                    Problem(
                        display_path(rel_dir),
                        "a link to a folder already scanned "
                        "(a symbolic link loop or a second link); not followed",
                    )
                )
            continue
        visited.add((st.st_dev, st.st_ino))
        abs_dir = os.path.join(root, rel_dir) if rel_dir else root
        try:
            with os.scandir(abs_dir) as it:
                entries = list(it)
        except OSError as exc:
            listing.problems.append(Problem(display_path(rel_dir) or ".", "folder " + _error_text(exc)))
            listing.unlisted.append(display_path(rel_dir))
            continue
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue  # hidden files, macOS ._ files, partial copies of rsync
            rel = _join(rel_dir, name)
            try:
                est = entry.stat()  # follows symlinks
            except OSError as exc:
                if _looks_like_image(name) or entry.is_symlink() or _is_dir_entry(entry):
                    listing.problems.append(Problem(display_path(rel), _error_text(exc)))
                continue
            if stat.S_ISDIR(est.st_mode):
                stack.append((rel, est))
            else:
                _add_file(listing, rel, entry.path, est, top=not rel_dir)


def _is_dir_entry(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _looks_like_image(name: str) -> bool:
    suffix = os.path.splitext(name)[1].lower()
    return suffix in SUFFIX_FORMATS or suffix in UNSUPPORTED_SUFFIXES


def _add_file(listing: Listing, rel: str, abspath: str, st: os.stat_result, top: bool) -> None:
    name = rel.rsplit("/", 1)[-1]
    suffix = os.path.splitext(name)[1].lower()
    if suffix == ".json":
        if not (top and name == CATALOG_JSON):
            listing.json_files.add(rel)
        return
    if suffix not in SUFFIX_FORMATS and suffix not in UNSUPPORTED_SUFFIXES:
        return
    shown = display_path(rel)
    found = FoundFile(shown, abspath, st.st_size, st.st_mtime_ns, sql_inode(st.st_ino))
    if shown != rel:
        found.refused = (
            "the file name is not valid UTF-8 text (written by an old system?); "
            "rename the file so that it can be shown"
        )
    elif suffix in UNSUPPORTED_SUFFIXES:
        found.refused = (
            f"{UNSUPPORTED_SUFFIXES[suffix]} images are not supported; save it as JPEG, PNG, WebP or TIFF"
        )
    elif not stat.S_ISREG(st.st_mode):
        found.refused = "not a regular file (a pipe, socket or device); not read"
    listing.images[shown] = found
