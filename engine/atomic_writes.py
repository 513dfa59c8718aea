"""Files and folders that appear whole or not at all.

Clip files, captures, model bundles, converted aligners and exported training runs are written
under a hidden temporary name beside their final one and renamed into place when complete, so a
reader (the kiosk playing a clip, the engine loading a bundle) never sees one half-written and a
failure leaves nothing behind. The rename is atomic on one file system, hence "beside".
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` durably (fsynced before the rename) and atomically."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def is_taken(out: Path) -> bool:
    """Whether ``out`` exists as anything but an empty folder (the caller refuses to overwrite)."""
    return out.exists() and (not out.is_dir() or any(out.iterdir()))


@contextlib.contextmanager
def written_in_place(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` to fill; it becomes ``out`` when the block ends, or is
    removed if the block raises. ``out`` may exist only as an empty folder."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield work
        if out.exists():
            out.rmdir()  # empty (is_taken was checked): replaced by the complete folder
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
