"""Scanning a collection folder into a real SQLite store."""

import json
import os
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from catalog_files import age, snapshot, write_jpeg, write_png, write_png_bomb, write_truncated_jpeg
from sqlalchemy import select

from engine.catalog import scanner
from engine.catalog.images import DESCRIPTOR_DIM
from engine.catalog.scanner import ScanError, list_artworks, scan_collection
from engine.config import CatalogConfig
from engine.store import Artwork, Database

CONFIG = CatalogConfig(thumbnail_size=128)


@pytest.fixture
def db(db_path):
    database = Database(db_path)
    yield database
    database.close()


def by_path(db):
    return {a["path"]: a for a in list_artworks(db)}


def test_demo_collection_is_imported_with_metadata_and_left_untouched(collection, db):
    before = snapshot(collection)
    summary = scan_collection(db, collection, CONFIG)
    assert summary.added == 8 and summary.invalid == 0 and summary.problems == []
    arts = by_path(db)
    cafe = arts["cafe-terrace-at-night.png"]
    assert (cafe["title"], cafe["artist"], cafe["year"]) == (
        "Café Terrace at Night",
        "Vincent van Gogh",
        "1888",
    )
    assert cafe["status"] == "ready" and cafe["width"] > 0 and len(cafe["image_hash"]) == 64
    with db.read() as s:
        row = s.scalars(select(Artwork).where(Artwork.path == "cafe-terrace-at-night.png")).one()
        assert row.thumbnail[:2] == b"\xff\xd8"  # JPEG
        assert row.embedding_kind == "descriptor-v1"
        assert np.frombuffer(row.embedding, np.float32).shape == (DESCRIPTOR_DIM,)
    again = scan_collection(db, collection, CONFIG)
    assert (again.unchanged, again.added, again.updated, again.changed) == (8, 0, 0, False)
    assert snapshot(collection) == before  # the curators' files: same bytes, same mtimes


def test_every_bad_file_is_invalid_with_a_reason_and_the_rest_imported(tmp_path, db):
    c = tmp_path / "c"
    write_jpeg(c / "good.jpg", 1)
    write_truncated_jpeg(c / "truncated.jpg", 2)
    (c / "empty.jpg").write_bytes(b"")
    (c / "letter.jpg").write_text("Not a picture, a letter.\n")
    write_png_bomb(c / "bomb.png")
    (c / "anim.gif").write_bytes(b"GIF89a")
    os.mkfifo(c / "pipe.jpg")  # would block a reader that opened it
    age(c)  # copied in long ago: not a copy still under way
    before = snapshot(c)
    summary = scan_collection(db, c, CONFIG)
    reasons = dict(summary.invalid_items)
    assert set(reasons) == {"truncated.jpg", "empty.jpg", "letter.jpg", "bomb.png", "anim.gif", "pipe.jpg"}
    assert "truncated" in reasons["truncated.jpg"]
    assert "empty (0 bytes)" in reasons["empty.jpg"]
    assert "contains text" in reasons["letter.jpg"]
    assert "decompression bomb" in reasons["bomb.png"] and "1,600,000,000" in reasons["bomb.png"]
    assert "GIF images are not supported" in reasons["anim.gif"]
    assert "not a regular file" in reasons["pipe.jpg"]
    arts = by_path(db)
    assert arts["good.jpg"]["status"] == "ready"
    assert all(arts[p]["status"] == "invalid" and arts[p]["reason"] == r for p, r in reasons.items())
    assert snapshot(c) == before
    # A re-scan does not re-report them as changes, but still lists them as invalid.
    again = scan_collection(db, c, CONFIG)
    assert not again.changed and dict(again.invalid_items) == reasons


def test_a_file_still_arriving_is_not_marked_invalid(tmp_path, db):
    c = tmp_path / "c"
    write_jpeg(c / "good.jpg")
    write_truncated_jpeg(c / "arriving.jpg")  # just written, half there
    summary = scan_collection(db, c, CONFIG)
    assert summary.growing == ["arriving.jpg"] and summary.invalid == 0
    assert "still being copied" in dict(summary.problems)["arriving.jpg"]
    assert set(by_path(db)) == {"good.jpg"}
    age(c)  # nothing more came: a truncated file after all
    summary = scan_collection(db, c, CONFIG)
    assert "truncated" in dict(summary.invalid_items)["arriving.jpg"]


def _scan_in_child(db_path, folder, conn):
    """Scan in a forked child; as root, first drop to 'nobody' so permissions apply."""
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    database = Database(db_path)
    summary = scan_collection(database, folder, CONFIG)
    conn.send((summary.invalid_items, summary.problems))
    database.close()


@pytest.mark.slow
def test_unreadable_file_and_folder_are_reported_and_retried(tmp_path):
    import multiprocessing as mp
    import tempfile

    # Warm every lazy import before the fork: the child, as 'nobody', may not read them.
    write_jpeg(tmp_path / "warm" / "w.jpg")
    warm = Database(tmp_path / "warm.db")
    scan_collection(warm, tmp_path / "warm", CONFIG)
    warm.close()
    base = tempfile.mkdtemp(prefix="art2mus-perm-")  # outside pytest's root-only temp folder
    try:
        os.chmod(base, 0o777)
        c = os.path.join(base, "c")
        write_jpeg(Path(c) / "open.jpg", 1)
        locked = write_jpeg(Path(c) / "locked.jpg", 2)
        write_jpeg(Path(c) / "private" / "p.jpg", 3)
        locked.chmod(0)
        os.chmod(os.path.join(c, "private"), 0)
        for d in (c,):
            os.chmod(d, 0o755)
        db_file = os.path.join(base, "db", "art2mus.db")
        os.makedirs(os.path.dirname(db_file), mode=0o777)
        os.chmod(os.path.dirname(db_file), 0o777)
        ctx = mp.get_context("fork")
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_scan_in_child, args=(db_file, c, child))
        proc.start()
        assert parent.poll(60), "the scan in the child process did not report"
        invalid_items, problems = parent.recv()
        proc.join(30)
        assert proc.exitcode == 0
        assert "permission denied" in dict(invalid_items)["locked.jpg"]
        assert "permission denied" in dict(problems)["private"]
        locked.chmod(0o644)
        os.chmod(os.path.join(c, "private"), 0o755)
        database = Database(db_file)
        summary = scan_collection(database, c, CONFIG)  # retried once readable
        assert summary.invalid == 0 and by_path(database)["locked.jpg"]["status"] == "ready"
        assert by_path(database)["private/p.jpg"]["status"] == "ready"
        database.close()
    finally:
        for dirpath, dirs, _ in os.walk(base):
            for d in dirs:
                os.chmod(os.path.join(dirpath, d), 0o755)
        shutil.rmtree(base, ignore_errors=True)


def test_metadata_precedence_sidecar_json_csv_filename(tmp_path, db):
    c = tmp_path / "c"
    for i, name in enumerate(["a.jpg", "b.jpg", "c.jpg", "d_plain-name.jpg"]):
        write_jpeg(c / name, i)
    (c / "catalog.csv").write_text(
        "file,title,artist,year,room\n"
        "a.jpg,CSV A,Csv Artist,1900,Hall 1\n"
        "b.jpg,CSV B,Csv Artist,1901,Hall 2\n"
        "c.jpg,CSV C,Csv Artist,1902,\n"
    )
    (c / "catalog.json").write_text(
        json.dumps([{"file": "b.jpg", "title": "JSON B", "year": 1950}, {"file": "c.jpg", "title": "JSON C"}])
    )
    (c / "c.json").write_text(json.dumps({"title": "Sidecar C", "style": "Cubism", "loan": "private"}))
    scan_collection(db, c, CONFIG)
    arts = by_path(db)
    assert (arts["a.jpg"]["title"], arts["a.jpg"]["year"], arts["a.jpg"]["extra"]) == (
        "CSV A",
        "1900",
        {"room": "Hall 1"},
    )
    assert (arts["b.jpg"]["title"], arts["b.jpg"]["year"], arts["b.jpg"]["artist"]) == (
        "JSON B",
        "1950",
        "Csv Artist",
    )
    assert (arts["c.jpg"]["title"], arts["c.jpg"]["style"]) == ("Sidecar C", "Cubism")
    assert arts["c.jpg"]["extra"] == {"loan": "private"}
    assert arts["c.jpg"]["metadata_source"] == "c.json; catalog.json:[1]; catalog.csv:4"
    assert arts["d_plain-name.jpg"]["title"] == "D Plain Name"


def test_metadata_edit_updates_the_artwork_without_rereading(tmp_path, db):
    c = tmp_path / "c"
    write_jpeg(c / "a.jpg")
    scan_collection(db, c, CONFIG)
    (c / "a.json").write_text('{"title": "Evening", "artist": "M. Curator"}')
    summary = scan_collection(db, c, CONFIG)
    assert (summary.updated, summary.added) == (1, 0)
    assert by_path(db)["a.jpg"]["title"] == "Evening"


def test_malformed_and_unreadable_metadata_is_reported_and_images_still_imported(tmp_path, db):
    c = tmp_path / "c"
    write_jpeg(c / "a.jpg", 1)
    write_jpeg(c / "b.jpg", 2)
    (c / "catalog.csv").write_text('file,title\na.jpg,Good title\nb.jpg,"unterminated\n')
    (c / "catalog.json").mkdir()  # a folder where a file should be: cannot be read
    (c / "b.json").write_text('{"title": "B",\n "artist": }\n')
    summary = scan_collection(db, c, CONFIG)
    problems = dict(summary.problems)
    assert "line 3" in problems["catalog.csv"]
    assert "cannot be read" in problems["catalog.json"]
    assert "line 2, column 12: not valid JSON" in problems["b.json"]
    arts = by_path(db)
    assert arts["a.jpg"]["title"] == "Good title" and arts["a.jpg"]["status"] == "ready"
    assert arts["b.jpg"]["title"] == "B"  # the sidecar is unusable: from the file name
    assert arts["b.jpg"]["status"] == "ready"


def test_csv_without_file_column_and_bad_json_shape_are_reported(tmp_path, db):
    c = tmp_path / "c"
    write_jpeg(c / "a.jpg")
    (c / "catalog.csv").write_text("name,title\na.jpg,X\n")
    (c / "catalog.json").write_text('{"paintings": []}')
    problems = dict(scan_collection(db, c, CONFIG).problems)
    assert "no 'file' column" in problems["catalog.csv"]
    assert '{"artworks": [...]}' in problems["catalog.json"]
    assert by_path(db)["a.jpg"]["status"] == "ready"


def test_non_utf8_metadata_is_decoded_and_reported(tmp_path, db):
    c = tmp_path / "c"
    write_jpeg(c / "cafe.jpg")
    (c / "catalog.csv").write_bytes("file;title;artist\ncafe.jpg;Café;Gauguin\n".encode("cp1252"))
    summary = scan_collection(db, c, CONFIG)
    assert "not UTF-8" in dict(summary.problems)["catalog.csv"]
    assert by_path(db)["cafe.jpg"]["title"] == "Café"


def test_metadata_row_naming_a_missing_image_is_reported(tmp_path, db):
    c = tmp_path / "c"
    write_jpeg(c / "a.jpg")
    (c / "catalog.csv").write_text("file,title\na.jpg,A\nghost.jpg,Ghost\n")
    (c / "catalog.json").write_text('{"artworks": [{"file": "phantom.png", "title": "P"}]}')
    (c / "orphan.json").write_text('{"title": "nobody"}')
    problems = scan_collection(db, c, CONFIG).problems
    assert ("catalog.csv", "line 3: names 'ghost.jpg', which is not in the collection") in problems
    assert ("catalog.json", "artworks[0]: names 'phantom.png', which is not in the collection") in problems
    assert any(p == "orphan.json" and "no image" in r for p, r in problems)
    assert set(by_path(db)) == {"a.jpg"}


def test_non_utf8_and_very_long_file_names(tmp_path, db):
    c = tmp_path / "c"
    write_jpeg(c / "ok.jpg")
    raw = os.path.join(os.fsencode(c), b"caf\xe9.jpg")  # Latin-1 name from an old system
    with open(raw, "wb") as fh:
        fh.write((c / "ok.jpg").read_bytes())
    long_name = "é" * 123 + ".jpg"  # 250 bytes in UTF-8, near the file system's limit
    write_jpeg(c / long_name, 3)
    summary = scan_collection(db, c, CONFIG)
    reasons = dict(summary.invalid_items)
    assert "not valid UTF-8" in reasons["caf\\xe9.jpg"]
    arts = by_path(db)
    assert arts[long_name]["status"] == "ready" and arts["ok.jpg"]["status"] == "ready"
    assert not scan_collection(db, c, CONFIG).changed


def test_path_longer_than_the_system_allows_is_reported(tmp_path, db):
    c = tmp_path / "c"
    write_jpeg(c / "ok.jpg")
    fd = os.open(c, os.O_RDONLY)
    try:
        for _ in range(24):  # 24 x 201 bytes > PATH_MAX (4096)
            os.mkdir("d" * 200, dir_fd=fd)
            nxt = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        with open(os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, dir_fd=fd), "wb") as fh:
            fh.write((c / "ok.jpg").read_bytes())
    finally:
        os.close(fd)
    summary = scan_collection(db, c, CONFIG)
    assert any("too long" in reason for _, reason in summary.problems)
    assert by_path(db)["ok.jpg"]["status"] == "ready"
    shutil.rmtree(c)  # rmtree copes with deep trees by file descriptors


def test_symlink_loops_end(tmp_path, db):
    c = tmp_path / "c"
    write_jpeg(c / "sub" / "a.jpg")
    (c / "sub" / "back").symlink_to("..")  # sub/back -> c : a loop
    (c / "self.jpg").symlink_to("self.jpg")  # a link to itself
    (c / "dangling.png").symlink_to("nowhere.png")
    summary = scan_collection(db, c, CONFIG)
    assert set(by_path(db)) == {"sub/a.jpg"}
    problems = dict(summary.problems)
    assert "already scanned" in problems["sub/back"]
    assert "symbolic link loop" in problems["self.jpg"]
    assert "link to nothing" in problems["dangling.png"]


def test_folder_vanishing_during_the_listing(tmp_path, db, monkeypatch):
    c = tmp_path / "c"
    write_jpeg(c / "keep.jpg", 1)
    write_jpeg(c / "vanishing" / "v.jpg", 2)
    real_scandir = os.scandir

    def scandir(path):
        if str(path).endswith("vanishing"):
            shutil.rmtree(path)  # a curator deletes the folder just as it is listed
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    summary = scan_collection(db, c, CONFIG)
    assert set(by_path(db)) == {"keep.jpg"}
    assert any(p == "vanishing" and "vanished" in r for p, r in summary.problems)


def test_folder_vanishing_while_its_images_are_read(tmp_path, db):
    c = tmp_path / "c"
    for i in range(6):
        write_jpeg(c / "sub" / f"{i}.jpg", i)
    write_jpeg(c / "top.jpg", 9)

    def progress(done, total):
        if done == 1:
            shutil.rmtree(c / "sub", ignore_errors=True)

    summary = scan_collection(db, c, CONFIG, progress=progress, workers=1)
    arts = by_path(db)
    assert summary.invalid == 0  # files that vanished are not "invalid"
    assert all(a["status"] == "ready" for a in arts.values())
    assert len(arts) < 7
    assert scan_collection(db, c, CONFIG).missing == len(arts) - ("top.jpg" in arts)


def test_rename_keeps_row_and_hash_replace_changes_hash_delete_is_missing(tmp_path, db):
    c = tmp_path / "c"
    write_jpeg(c / "a.jpg", 1)
    write_jpeg(c / "b.jpg", 2)
    scan_collection(db, c, CONFIG)
    first = by_path(db)

    (c / "a.jpg").rename(c / "renamed.jpg")
    summary = scan_collection(db, c, CONFIG)
    assert (summary.renamed, summary.added, summary.missing) == (1, 0, 0)
    arts = by_path(db)
    assert arts["renamed.jpg"]["id"] == first["a.jpg"]["id"]
    assert arts["renamed.jpg"]["image_hash"] == first["a.jpg"]["image_hash"]

    write_jpeg(c / "b.jpg", 3)  # replaced in place: new bytes
    summary = scan_collection(db, c, CONFIG)
    assert summary.updated == 1
    arts = by_path(db)
    assert arts["b.jpg"]["id"] == first["b.jpg"]["id"]
    assert arts["b.jpg"]["image_hash"] != first["b.jpg"]["image_hash"]

    (c / "b.jpg").unlink()
    assert scan_collection(db, c, CONFIG).missing == 1
    assert by_path(db)["b.jpg"]["status"] == "missing"  # kept, not deleted

    # The same bytes come back under another name: the old row (and its clips) is found again.
    write_jpeg(c / "copy-of-b.jpg", 3)
    summary = scan_collection(db, c, CONFIG)
    assert summary.renamed == 1
    arts = by_path(db)
    assert arts["copy-of-b.jpg"]["id"] == first["b.jpg"]["id"] and arts["copy-of-b.jpg"]["status"] == "ready"


def test_copy_to_new_name_then_delete_old_is_a_rename_by_hash(tmp_path, db):
    c = tmp_path / "c"
    write_jpeg(c / "a.jpg", 1)
    scan_collection(db, c, CONFIG)
    old = by_path(db)["a.jpg"]
    shutil.copy(c / "a.jpg", c / "moved.jpg")  # new inode and mtime: found by content hash
    (c / "a.jpg").unlink()
    summary = scan_collection(db, c, CONFIG)
    assert summary.renamed == 1 and summary.missing == 0
    assert by_path(db)["moved.jpg"]["id"] == old["id"]


def test_two_files_swapping_names_are_noticed(tmp_path, db):
    c = tmp_path / "c"
    write_jpeg(c / "a.jpg", 1)
    write_jpeg(c / "b.jpg", 2)
    os.utime(c / "b.jpg", ns=(os.stat(c / "a.jpg").st_mtime_ns,) * 2)
    scan_collection(db, c, CONFIG)
    before = by_path(db)
    os.rename(c / "a.jpg", c / "tmp.jpg")
    os.rename(c / "b.jpg", c / "a.jpg")
    os.rename(c / "tmp.jpg", c / "b.jpg")
    scan_collection(db, c, CONFIG)
    after = by_path(db)
    assert after["a.jpg"]["image_hash"] == before["b.jpg"]["image_hash"]
    assert after["b.jpg"]["image_hash"] == before["a.jpg"]["image_hash"]


def test_a_crash_mid_scan_leaves_whole_batches_and_the_next_scan_finishes(tmp_path, db, monkeypatch):
    c = tmp_path / "c"
    for i in range(10):
        write_jpeg(c / f"{i}.jpg", i)
    monkeypatch.setattr(scanner, "BATCH_SIZE", 4)

    def progress(done, total):
        if done == 6:
            raise KeyboardInterrupt  # the power button, as far as the scan can tell

    with pytest.raises(KeyboardInterrupt):
        scan_collection(db, c, CONFIG, progress=progress, workers=1)
    with db.read() as s:
        rows = s.scalars(select(Artwork)).all()
        assert len(rows) == 4
        assert all(r.thumbnail and r.embedding and r.image_hash for r in rows)
    summary = scan_collection(db, c, CONFIG)
    assert (summary.added, summary.unchanged) == (6, 4)


def test_missing_collection_folder_is_an_error_and_changes_nothing(tmp_path, db):
    c = tmp_path / "c"
    write_jpeg(c / "a.jpg")
    scan_collection(db, c, CONFIG)
    shutil.rmtree(c)
    with pytest.raises(ScanError, match="does not exist"):
        scan_collection(db, c, CONFIG)
    assert by_path(db)["a.jpg"]["status"] == "ready"


def test_database_from_schema_1_is_migrated_and_kept(tmp_path, db_path):
    c = tmp_path / "c"
    write_jpeg(c / "a.jpg")
    database = Database(db_path)
    scan_collection(database, c, CONFIG)
    old_id = by_path(database)["a.jpg"]["id"]
    database.close()
    # Make it a version-1 file: no artworks.file_inode column, no service_status table.
    con = sqlite3.connect(db_path)
    con.execute("ALTER TABLE artworks DROP COLUMN file_inode")
    con.execute("DROP TABLE service_status")
    con.execute("ALTER TABLE clips DROP COLUMN loop_start")  # added by step 4
    con.execute("ALTER TABLE clips DROP COLUMN loop_end")
    con.execute("ALTER TABLE jobs DROP COLUMN faults")  # added by step 5
    con.execute("ALTER TABLE jobs DROP COLUMN not_before")
    con.execute("DROP TABLE conditions")
    con.execute("DROP INDEX ix_clips_audio_sha256")  # added by step 7
    con.execute("ALTER TABLE clips DROP COLUMN audio_sha256")
    con.execute("ALTER TABLE clips DROP COLUMN audio_size")
    con.execute("DROP TABLE catalog_problems")  # added by step 8
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()

    database = Database(db_path)
    assert database.migrated_from == 1
    columns = {r[1] for r in sqlite3.connect(db_path).execute("PRAGMA table_info(artworks)")}
    assert "file_inode" in columns
    summary = scan_collection(database, c, CONFIG)
    assert summary.added == 0 and by_path(database)["a.jpg"]["id"] == old_id
    assert not scan_collection(database, c, CONFIG).changed
    database.close()


def test_png_and_jpeg_side_by_side_in_subfolders(tmp_path, db):
    c = tmp_path / "c"
    write_png(c / "room 1" / "x.png", 1)
    write_jpeg(c / "room 2" / "y.JPG", 2)
    scan_collection(db, c, CONFIG)
    assert set(by_path(db)) == {"room 1/x.png", "room 2/y.JPG"}


def test_unversioned_database_with_tables_is_refused_clearly(db_path):
    from engine.store import SchemaError

    db_path.parent.mkdir(parents=True)
    con = sqlite3.connect(db_path)
    con.execute("CREATE TABLE artworks (id INTEGER PRIMARY KEY, path TEXT)")
    con.execute("INSERT INTO artworks (path) VALUES ('keep-me.jpg')")
    con.commit()
    con.close()
    with pytest.raises(SchemaError, match="no schema version"):
        Database(db_path)
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT path FROM artworks").fetchall() == [("keep-me.jpg",)]


def test_metadata_problems_are_stored_with_file_and_line_and_said_once(tmp_path, db):
    from engine.store.problems import stored_problems

    c = tmp_path / "c"
    c.mkdir()
    write_jpeg(c / "a.jpg")
    (c / "catalog.csv").write_text("file,title\na.jpg,A\nghost.jpg,Gone\na.jpg,Twice\n")
    first = scan_collection(db, c, CatalogConfig())
    stored = {(p.file, p.line): p.reason for p in stored_problems(db)}
    assert "which is not in the collection" in stored[("catalog.csv", 3)]
    assert "already on line 2" in stored[("catalog.csv", 4)]
    assert len(first.new_problems) == 2
    again = scan_collection(db, c, CatalogConfig())
    assert again.problems == first.problems and again.new_problems == []  # the log says it once
    # The curator fixes the file: a full scan finds nothing, and the stored problems go.
    (c / "catalog.csv").write_text("file,title\na.jpg,A\n")
    scan_collection(db, c, CatalogConfig())
    assert stored_problems(db) == []
