"""`art2mus engine serve` in one process: catalog in step, every clip made, status recorded,
a clean stop on SIGTERM (as systemd sends it)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.beacons import BeaconWriter
from engine.health import ServiceName
from engine.store import Clip, Database
from engine.store.status import read_engine

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # `art2mus engine serve` runs as a child process


def test_engine_serve_fills_the_store_follows_the_folder_and_stops_on_sigterm(tmp_path, collection):
    db_path = tmp_path / "store.db"
    config = tmp_path / "art2mus.toml"
    config.write_text(
        f'[collection]\npath = "{collection}"\n[store]\ndatabase = "{db_path}"\n'
        '[engine]\nname = "auto"\nduration = 5.0\ncandidates = 1\n[catalog]\nsettle_seconds = 0.3\n'
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    # Another engine service already serves this database (its beacon, written by this test
    # process): the new one says so at start.
    other = BeaconWriter(db_path, ServiceName.ENGINE)
    other.start()
    proc = subprocess.Popen(
        [sys.executable, "-m", "art2mus", "-c", str(config), "engine", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    def clips() -> int:
        if not db_path.exists():
            return 0
        db = Database(db_path)
        try:
            with db.read() as s:
                return s.scalar(select(func.count()).select_from(Clip))
        finally:
            db.close()

    def wait_for(n: int, seconds: float) -> int:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and proc.poll() is None and clips() < n:
            time.sleep(0.5)
        return clips()

    try:
        assert wait_for(8, 180) == 8
        # A curator copies another painting in while the service runs: it gets its clip.
        shutil.copy(collection / "the-night-cafe.png", tmp_path / "copy.png")
        with open(tmp_path / "copy.png", "ab") as fh:
            fh.write(b"\0")  # different bytes, so a new image hash (PNG ignores trailing data)
        shutil.move(tmp_path / "copy.png", collection / "night-cafe-study.png")
        assert wait_for(9, 120) == 9
        status = read_engine(Database(db_path))
        assert status.engine == "default"
        # No GPU here: "auto" says why the default engine runs.
        assert status.reason and status.worker_id.endswith(f":{proc.pid}")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        other.stop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert "engine service stopped" in out
    assert f"another engine service already serves this database ({other.host}:{other.pid}" in out
