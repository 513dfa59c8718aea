"""The watcher follows a folder while curators copy, rename, replace and delete files."""

import shutil
import threading
import time
from pathlib import Path

import pytest
from catalog_files import picture, write_jpeg
from PIL import Image

from engine.catalog.scanner import list_artworks
from engine.catalog.watcher import CatalogWatcher
from engine.config import CatalogConfig
from engine.store import Database

CONFIG = CatalogConfig(thumbnail_size=128, settle_seconds=0.3)


def wait_for(condition, timeout=6.0, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def by_path(db):
    return {a["path"]: a for a in list_artworks(db)}


@pytest.fixture
def watched(tmp_path, db_path):
    folder = tmp_path / "c"
    write_jpeg(folder / "first.jpg", 1)
    db = Database(db_path)
    changes = []
    watcher = CatalogWatcher(db, folder, CONFIG, on_change=changes.append)
    watcher.start()
    wait_for(lambda: "first.jpg" in by_path(db))
    yield folder, db, changes
    watcher.stop()
    db.close()


@pytest.mark.slow
def test_slow_copy_is_read_only_when_complete(watched, tmp_path):
    folder, db, changes = watched
    source = tmp_path / "big.jpg"
    Image.fromarray(picture(7, 1200, 900)).save(source, quality=95)
    data = source.read_bytes()
    seen_during_copy = []
    with open(folder / "arriving.jpg", "wb") as fh:  # a copy over a slow network share
        for i in range(0, len(data), len(data) // 8):
            fh.write(data[i : i + len(data) // 8])
            fh.flush()
            seen_during_copy.append(by_path(db).get("arriving.jpg"))
            time.sleep(0.2)
    done = time.monotonic()
    row = wait_for(lambda: by_path(db).get("arriving.jpg"))
    latency = time.monotonic() - done
    assert seen_during_copy == [None] * len(seen_during_copy)  # never read half-written
    assert row["status"] == "ready" and row["width"] == 1200
    assert latency < 2.0
    assert any(s.added for s in changes)


@pytest.mark.slow
def test_a_copy_that_pauses_is_retried_not_marked_invalid(watched, tmp_path):
    folder, db, _ = watched
    source = tmp_path / "src.jpg"
    Image.fromarray(picture(8, 800, 600)).save(source, quality=95)
    data = source.read_bytes()
    statuses = []
    stop = threading.Event()

    def observe():
        while not stop.is_set():
            statuses.append((by_path(db).get("paused.jpg") or {}).get("status"))
            time.sleep(0.02)

    t = threading.Thread(target=observe)
    t.start()
    with open(folder / "paused.jpg", "wb") as fh:
        fh.write(data[: len(data) // 2])
        fh.flush()
        time.sleep(1.0)  # longer than settle_seconds: the watcher reads a half file
        fh.write(data[len(data) // 2 :])
    row = wait_for(lambda: (by_path(db).get("paused.jpg") or {}).get("status") == "ready")
    stop.set()
    t.join()
    assert row and "invalid" not in statuses


def test_rename_replace_delete_and_metadata_edit(watched):
    folder, db, _ = watched
    first = by_path(db)["first.jpg"]

    (folder / "first.jpg").rename(folder / "moved.jpg")
    moved = wait_for(lambda: by_path(db).get("moved.jpg"))
    assert moved["id"] == first["id"] and moved["image_hash"] == first["image_hash"]
    assert "first.jpg" not in by_path(db)  # moved, not missing

    write_jpeg(folder / "tmp.part", 2)  # write elsewhere, then replace atomically
    (folder / "tmp.part").replace(folder / "moved.jpg")
    replaced = wait_for(lambda: (r := by_path(db)["moved.jpg"])["image_hash"] != first["image_hash"] and r)
    assert replaced["id"] == first["id"]

    (folder / "moved.json").write_text('{"title": "Dusk", "artist": "A. Painter"}')
    wait_for(lambda: by_path(db)["moved.jpg"]["title"] == "Dusk")
    (folder / "moved.json").unlink()
    wait_for(lambda: by_path(db)["moved.jpg"]["title"] == "Moved")  # back to the file name

    (folder / "moved.jpg").unlink()
    wait_for(lambda: by_path(db)["moved.jpg"]["status"] == "missing")


def test_folder_copied_in_and_removed(watched, tmp_path):
    folder, db, _ = watched
    staging = tmp_path / "room"
    for i in range(3):
        write_jpeg(staging / f"{i}.jpg", 10 + i)
    shutil.copytree(staging, folder / "room")
    wait_for(lambda: sum(p.startswith("room/") for p in by_path(db)) == 3)
    shutil.rmtree(folder / "room")
    wait_for(lambda: all(a["status"] == "missing" for p, a in by_path(db).items() if p.startswith("room/")))
    assert by_path(db)["first.jpg"]["status"] == "ready"


def test_catalog_csv_edit_triggers_a_full_sync(watched):
    folder, db, _ = watched
    (folder / "catalog.csv").write_text("file,title,artist\nfirst.jpg,Morning,B. Artist\n")
    wait_for(lambda: by_path(db)["first.jpg"]["title"] == "Morning")


@pytest.mark.slow
def test_collection_folder_removed_and_made_again_is_watched_again(watched, tmp_path):
    folder, db, _ = watched
    shutil.rmtree(folder)  # a drive unplugged, say
    time.sleep(0.5)
    assert by_path(db)["first.jpg"]["status"] == "ready"  # not marked missing on a whim
    folder.mkdir()
    write_jpeg(folder / "first.jpg", 1)  # the drive is back, with its files
    wait_for(lambda: by_path(db)["first.jpg"]["status"] == "ready", timeout=8)
    write_jpeg(folder / "later.jpg", 4)  # and changes in it are seen again
    wait_for(lambda: "later.jpg" in by_path(db), timeout=8)


def _exhaust_inotify_instances() -> list[int]:
    """Open inotify instances until the kernel refuses one (fs.inotify.max_user_instances).

    Returns the descriptors, to be closed by the caller. Skips when the per-process file limit
    would be reached first (then nothing else could open a file either).
    """
    import ctypes
    import errno
    import os
    import resource

    limit_path = "/proc/sys/fs/inotify/max_user_instances"
    if not os.path.exists(limit_path):
        pytest.skip("no inotify on this system")
    instances = int(Path(limit_path).read_text())
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if instances + 64 > soft:
        pytest.skip(f"max_user_instances {instances} is not below the file limit {soft}")
    libc = ctypes.CDLL(None, use_errno=True)
    fds: list[int] = []
    while len(fds) <= instances:
        fd = libc.inotify_init1(os.O_CLOEXEC)
        if fd < 0:
            assert ctypes.get_errno() == errno.EMFILE
            return fds
        fds.append(fd)
    for fd in fds:
        os.close(fd)
    pytest.skip("the inotify instance limit was not reached")


def test_inotify_limit_falls_back_to_polling_and_says_so(tmp_path, db_path, caplog):
    """With the kernel's inotify instances used up, the watcher polls and still sees changes."""
    import os

    folder = tmp_path / "c"
    write_jpeg(folder / "first.jpg", 1)
    db = Database(db_path)
    watcher = CatalogWatcher(db, folder, CONFIG)
    fds = _exhaust_inotify_instances()
    try:
        watcher.start()
    finally:
        for fd in fds:  # give them back at once: other programs of this user need them
            os.close(fd)
    try:
        assert watcher.polling
        warning = [r.getMessage() for r in caplog.records if "fs.inotify.max_user" in r.getMessage()]
        assert warning and str(folder) in warning[0] and "polling" in warning[0]
        wait_for(lambda: "first.jpg" in by_path(db))
        write_jpeg(folder / "second.jpg", 2)
        wait_for(lambda: "second.jpg" in by_path(db))
    finally:
        watcher.stop()
        db.close()
