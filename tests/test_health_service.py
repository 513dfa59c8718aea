"""The engine service as systemd runs it: READY=1, WATCHDOG=1 and STOPPING=1 arrive on a real
NOTIFY_SOCKET, and its loopback /health shows the real state while it runs."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.config import hash_pin

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/health")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


@pytest.mark.slow
def test_engine_serve_speaks_sd_notify_and_serves_health(tmp_path, collection):
    db_path = tmp_path / "store" / "art2mus.db"
    port = _free_port()
    config = tmp_path / "art2mus.toml"
    config.write_text(
        f'[collection]\npath = "{collection}"\n[store]\ndatabase = "{db_path}"\n'
        '[engine]\nname = "default"\nduration = 5.0\n[catalog]\nsettle_seconds = 0.3\n'
        f'[kiosk]\npin_hash = "{hash_pin("8642", salt="t", iterations=1000)}"\n'
        f'[health]\nlisten = "127.0.0.1:{port}"\n'
    )
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(60)
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        NOTIFY_SOCKET=str(tmp_path / "notify.sock"),
        WATCHDOG_USEC="1000000",  # a ping every 0.5 s
    )
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "art2mus", "-c", str(config), "engine", "serve"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    messages: list[bytes] = []

    def until(wanted: bytes) -> None:
        while not any(m.startswith(wanted) for m in messages):
            messages.append(sock.recv(4096))

    try:
        until(b"READY=1")
        until(b"WATCHDOG=1")
        # The watcher's first scan runs beside the worker: wait for the catalog in /health.
        deadline = time.monotonic() + 60
        report = _get(port)
        while report["artworks"]["ready"] < 8 and time.monotonic() < deadline:
            time.sleep(0.3)
            report = _get(port)
        assert report["artworks"] == {"ready": 8, "invalid": 0, "missing": 0}
        assert report["engine"]["name"] == "default" and report["engine"]["running"] is True
        assert report["services"][0]["pid"] == proc.pid and report["uptime_s"] >= 0
        assert report["security"]["default_pin"] is False and report["ok"] is True
        proc.send_signal(signal.SIGTERM)
        until(b"STOPPING=1")
        out, _ = proc.communicate(timeout=60)
    finally:
        sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    # Stopped cleanly: its beacon is gone, and the endpoint with it.
    assert not list((db_path.parent / "art2mus.db.services").glob("*.json"))
    with pytest.raises(OSError):
        _get(port)
