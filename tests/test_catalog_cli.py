"""`art2mus catalog scan/list/watch` as a curator runs them."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from catalog_files import age, write_jpeg
from click.testing import CliRunner

from art2mus.cli import main

ROOT = Path(__file__).resolve().parent.parent


def wait_for_line(lines: list[str], text: str, count: int = 1, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while sum(text in line for line in lines) < count:
        assert time.monotonic() < end, f"no line with {text!r} in {lines}"
        time.sleep(0.05)


def test_scan_and_list_json(collection, db_path):
    (collection / "broken.jpg").write_text("oops")
    age(collection)
    runner = CliRunner()
    result = runner.invoke(main, ["catalog", "scan", str(collection), "--db", str(db_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["summary"]["added"] == 9 and report["summary"]["invalid"] == 1
    assert report["summary"]["invalid_items"] == [
        {"path": "broken.jpg", "reason": "not an image: the file contains text"}
    ]
    result = runner.invoke(main, ["catalog", "list", "--db", str(db_path), "--json"])
    assert result.exit_code == 0, result.output
    artworks = {a["path"]: a for a in json.loads(result.output)}
    assert len(artworks) == 9
    night = artworks["the-night-cafe.png"]
    assert {k: night[k] for k in ("title", "artist", "year", "status")} == {
        "title": "The Night Café",
        "artist": "Vincent van Gogh",
        "year": "1888",
        "status": "ready",
    }
    assert artworks["broken.jpg"]["status"] == "invalid"
    assert "contains text" in artworks["broken.jpg"]["reason"]
    invalid = runner.invoke(main, ["catalog", "list", "--db", str(db_path), "--json", "--status", "invalid"])
    assert [a["path"] for a in json.loads(invalid.output)] == ["broken.jpg"]


def test_scan_prints_a_summary_with_reasons(tmp_path, db_path):
    c = tmp_path / "c"
    write_jpeg(c / "a.jpg")
    (c / "empty.jpg").write_bytes(b"")
    (c / "catalog.csv").write_text("file,title\nnot-there.jpg,Ghost\n")
    age(c)
    result = CliRunner().invoke(main, ["catalog", "scan", str(c), "--db", str(db_path)])
    assert result.exit_code == 0, result.output
    assert "1 added" in result.output or "2 added" in result.output
    assert "empty.jpg: the file is empty (0 bytes)" in result.output
    assert "catalog.csv: line 2: names 'not-there.jpg'" in result.output
    listing = CliRunner().invoke(main, ["catalog", "list", "--db", str(db_path)])
    assert "reason: the file is empty" in listing.output and "1 ready, 1 invalid" in listing.output


def test_scan_of_a_missing_folder_fails_with_its_name(tmp_path, db_path):
    result = CliRunner().invoke(main, ["catalog", "scan", str(tmp_path / "nope"), "--db", str(db_path)])
    assert result.exit_code == 1 and "nope" in result.output and "does not exist" in result.output


@pytest.mark.slow
def test_watch_command_picks_up_a_new_file_and_stops_on_sigterm(tmp_path, db_path):
    c = tmp_path / "c"
    write_jpeg(c / "a.jpg")
    config = tmp_path / "art2mus.toml"
    config.write_text("[catalog]\nsettle_seconds = 0.2\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "art2mus",
            "-c",
            str(config),
            "catalog",
            "watch",
            str(c),
            "--db",
            str(db_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_for_line(lines, "1 added")  # the first full scan: a.jpg
        write_jpeg(c / "new.jpg", 5)
        wait_for_line(lines, "1 added", count=2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        reader.join(5)
    rest = "".join(lines)
    assert proc.returncode == 0, rest
    listing = CliRunner().invoke(main, ["catalog", "list", "--db", str(db_path), "--json"])
    assert {a["path"] for a in json.loads(listing.output)} == {"a.jpg", "new.jpg"}
