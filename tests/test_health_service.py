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


def _worker_children(parent: int) -> list[int]:
    """The worker processes of ``parent`` (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_serve_on_several_devices_pings_only_while_every_worker_turns(tmp_path, collection):
    """`engine serve --gpus cpu:2`: a worker process frozen (SIGSTOP) stops the parent's watchdog
    pings after health.stall_seconds, so systemd would restart the service; thawed, they resume."""
    db_path = tmp_path / "art2mus.db"
    config = tmp_path / "art2mus.toml"
    config.write_text(
        f'[collection]\npath = "{collection}"\n[store]\ndatabase = "{db_path}"\n'
        '[engine]\nname = "default"\nduration = 5.0\n[health]\nstall_seconds = 30.0\n'
        f'[kiosk]\npin_hash = "{hash_pin("8642", salt="t", iterations=1000)}"\n'
    )
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    env = dict(os.environ, PYTHONPATH=str(ROOT), NOTIFY_SOCKET=str(tmp_path / "notify.sock"))
    env["WATCHDOG_USEC"] = "2000000"  # a ping every second
    env.pop("WATCHDOG_PID", None)
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "art2mus", "-c", str(config), "engine", "serve", "--gpus", "cpu:2"],
        cwd=tmp_path,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the workers end with it if the test fails
    )

    def pings_within(seconds: float) -> int:
        """WATCHDOG=1 datagrams received in the next ``seconds``."""
        count, end = 0, time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                count += sock.recv(4096).startswith(b"WATCHDOG=1")
            except TimeoutError:
                break
        return count

    frozen: int | None = None
    try:
        assert pings_within(20) > 0
        deadline = time.monotonic() + 60
        while len(children := _worker_children(proc.pid)) < 2:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        frozen = children[-1]
        os.kill(frozen, signal.SIGSTOP)
        pings_within(34)  # health.stall_seconds, and a little
        assert pings_within(4) == 0, log.read_text()  # frozen: no ping, so systemd would restart
        os.kill(frozen, signal.SIGCONT)
        frozen = None
        assert pings_within(6) > 0  # thawed: pings again
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        sock.close()
        if frozen is not None:
            os.kill(frozen, signal.SIGCONT)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    out = log.read_text()
    assert "not pinging the systemd watchdog: worker process" in out
    assert "pinging the systemd watchdog again" in out
    assert proc.returncode == 0, out
