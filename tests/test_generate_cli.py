"""`art2mus generate`, `art2mus pregenerate` and `art2mus engine serve` as a user runs them."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from art2mus.cli import main

ROOT = Path(__file__).resolve().parent.parent


def write_config(tmp_path: Path, collection: Path, db_path: Path, duration: float = 5.0) -> Path:
    cfg = tmp_path / "art2mus.toml"
    cfg.write_text(
        f'[collection]\npath = "{collection}"\n[store]\ndatabase = "{db_path}"\n'
        f'[engine]\nname = "default"\nduration = {duration}\nstale_seconds = 10.0\ncandidates = 1\n'
    )
    return cfg


def test_generate_writes_one_wav_per_image(tmp_path, demo_paintings):
    out = tmp_path / "out"
    images = [str(p) for p in demo_paintings[:3]]
    result = CliRunner().invoke(
        main, ["generate", *images, "--engine", "default", "--duration", "6", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    for p in demo_paintings[:3]:
        audio, rate = sf.read(out / f"{p.stem}.wav", dtype="float32")
        assert rate == 48000 and audio.shape == (6 * 48000, 2)
        assert str(out / f"{p.stem}.wav") in result.stdout
    assert sorted(os.listdir(out)) == sorted(
        f"{p.stem}.wav" for p in demo_paintings[:3]
    )  # no temp files left


def test_generate_same_seed_same_file_other_seed_differs(tmp_path, demo_paintings):
    runner = CliRunner()
    img = str(demo_paintings[0])
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        r = runner.invoke(
            main,
            [
                "generate",
                img,
                "--engine",
                "default",
                "--duration",
                "5",
                "--seed",
                seed,
                "--out",
                str(tmp_path / name),
            ],
        )
        assert r.exit_code == 0, r.output
    stem = demo_paintings[0].stem + ".wav"
    a, b, c = (sf.read(tmp_path / n / stem, dtype="float32")[0] for n in "abc")
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert (tmp_path / "a" / stem).read_bytes() == (tmp_path / "b" / stem).read_bytes()


def test_bad_images_are_named_and_the_rest_continue(tmp_path, demo_paintings):
    bad = tmp_path / "not-a-painting.png"
    bad.write_text("this is text, not an image")
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(demo_paintings[1].read_bytes()[:2000])
    missing = tmp_path / "missing.jpg"
    good = demo_paintings[0]
    out = tmp_path / "out"
    r = CliRunner().invoke(
        main,
        [
            "generate",
            str(bad),
            str(truncated),
            str(missing),
            str(good),
            "--engine",
            "default",
            "--duration",
            "5",
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 1
    for p in (bad, truncated, missing):
        assert str(p) in r.stderr
    assert "3 of 4 images failed" in r.stderr
    assert (out / f"{good.stem}.wav").exists()
    assert not (out / "not-a-painting.wav").exists()
    assert bad.read_text() == "this is text, not an image"  # the input is never touched


def test_out_of_range_duration_and_negative_seed_are_refused(tmp_path, demo_paintings):
    runner = CliRunner()
    img = str(demo_paintings[0])
    for args, expected in (
        (["--duration", "4"], "allowed: 5 to 120 seconds"),
        (["--duration", "121"], "allowed: 5 to 120 seconds"),
        (["--seed", "-1"], "allowed: 0 to 2147483647"),
    ):
        r = runner.invoke(main, ["generate", img, "--engine", "default", *args, "--out", str(tmp_path / "o")])
        assert r.exit_code == 2 and expected in r.output, r.output
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_pregenerate_fills_the_store_then_generates_nothing(tmp_path, collection, db_path):
    cfg = write_config(tmp_path, collection, db_path)
    runner = CliRunner()
    r = runner.invoke(main, ["--config", str(cfg), "pregenerate", "--db", str(db_path)])
    assert r.exit_code == 0, r.output
    assert "generated 8 clips for 8 artworks" in r.stdout
    assert "\r" not in r.stderr  # no progress bar when not on a terminal
    con = sqlite3.connect(db_path)
    assert con.execute("SELECT count(*) FROM clips WHERE engine='default'").fetchone()[0] == 8
    r = runner.invoke(main, ["--config", str(cfg), "pregenerate", "--db", str(db_path)])
    assert r.exit_code == 0, r.output
    assert "nothing to do" in r.stdout
    assert con.execute("SELECT count(*) FROM clips").fetchone()[0] == 8


@pytest.mark.slow
def test_engine_serve_generates_and_stops_cleanly_on_sigterm(tmp_path, collection, db_path):
    cfg = write_config(tmp_path, collection, db_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "art2mus",
            "--config",
            str(cfg),
            "engine",
            "serve",
            "--db",
            str(db_path),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        count = 0
        while count < 8:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the service did not generate the collection"
            time.sleep(0.5)
            if db_path.exists():
                con = sqlite3.connect(db_path)
                try:
                    count = con.execute("SELECT count(*) FROM clips").fetchone()[0]
                except sqlite3.OperationalError:
                    count = 0
                con.close()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "SIGTERM received, stopping" in err
    assert "engine service stopped" in err


def _clip_count(db_path: Path) -> int:
    if not db_path.exists():
        return 0
    con = sqlite3.connect(db_path)
    try:
        return con.execute("SELECT count(*) FROM clips").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def _wait_for(predicate, proc, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


@pytest.mark.slow
def test_engine_serve_follows_the_collection_folder(tmp_path, collection, db_path):
    """A painting added while the service runs gets its clip without a restart."""
    import pytest

    pytest.importorskip("engine.catalog.watcher")
    from PIL import Image

    cfg = write_config(tmp_path, collection, db_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "art2mus",
            "--config",
            str(cfg),
            "engine",
            "serve",
            "--db",
            str(db_path),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: _clip_count(db_path) >= 8, proc, 240, "the demo collection's clips")
        # A curator adds a new painting (a mirrored copy: new pixels, new content hash).
        src = Image.open(collection / "church-at-auvers.png")
        staging = tmp_path / "new-painting.png"
        src.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(staging)
        os.replace(staging, collection / "new-painting.png")
        _wait_for(lambda: _clip_count(db_path) >= 9, proc, 120, "the new painting's clip")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    con = sqlite3.connect(db_path)
    path = con.execute(
        "SELECT a.path FROM clips c JOIN artworks a ON a.id = c.artwork_id ORDER BY c.id DESC LIMIT 1"
    ).fetchone()[0]
    assert path == "new-painting.png"


def test_explicit_art2mus_that_cannot_load_is_a_clear_error(tmp_path, demo_paintings):
    cfg = tmp_path / "art2mus.toml"
    cfg.write_text(f'[engine]\nname = "art2mus"\nmodel = "{tmp_path / "no-bundle-here"}"\n')
    r = CliRunner().invoke(
        main, ["--config", str(cfg), "generate", str(demo_paintings[0]), "--out", str(tmp_path / "o")]
    )
    assert r.exit_code == 1
    assert "cannot load the art2mus engine" in r.output and str(tmp_path / "no-bundle-here") in r.output
