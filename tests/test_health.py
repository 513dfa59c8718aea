"""The health report against the real state of a real database: `art2mus status --json`, the
loopback HTTP endpoint (GET only), the services' beacons, and systemd's notify protocol over a
real unix datagram socket (issue 15, items 6-8)."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from art2mus.cli import main
from engine.beacons import BeaconWriter, read_beacons
from engine.catalog.scanner import scan_collection
from engine.config import hash_pin, load_config
from engine.engines.base import GeneratedClip
from engine.health import DEFAULT_PIN_WARNING, ServiceName, health_report
from engine.health_server import HealthServer
from engine.sd_notify import Watchdog, notify, watchdog_seconds
from engine.store import Artwork, ArtworkStatus, Database, JobKind
from engine.store.clips import ClipStore
from engine.store.jobs import JobQueue
from engine.store.status import record_engine

DEMO = Path(__file__).resolve().parent.parent / "content" / "demo"
OWN_PIN = hash_pin("8642", salt="t", iterations=1000)


class ToneEngine:
    name = "tone"
    model_version = "tone-1"

    def params(self):
        return {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_config(
    tmp_path: Path, collection: Path, db_path: Path, *, pin: str | None = OWN_PIN, listen: str = ""
):
    text = f'[collection]\npath = "{collection}"\n[store]\ndatabase = "{db_path}"\n'
    text += "[catalog]\nsettle_seconds = 0.3\n[engine]\nduration = 5.0\n"
    if pin:
        text += f'[kiosk]\npin_hash = "{pin}"\n'
    if listen:
        text += f'[health]\nlisten = "{listen}"\n'
    path = tmp_path / "art2mus.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def built_state(tmp_path_factory):
    """A store in a known state (built once: scanning the paintings takes a second): the 8
    demo paintings and a broken file scanned, then one painting deleted (missing), two clips
    for one artwork, one job failed for good, one queued; the engine's word recorded."""
    tmp_path = tmp_path_factory.mktemp("health")
    collection = tmp_path / "collection"
    shutil.copytree(DEMO, collection)
    db_path = tmp_path / "store" / "art2mus.db"
    broken = collection / "broken.png"
    broken.write_bytes(b"not an image")
    os.utime(broken, (time.time() - 60, time.time() - 60))  # settled: not a copy in progress
    db = Database(db_path)
    config = load_config(make_config(tmp_path, collection, db_path))
    scan_collection(db, collection, config.catalog)
    (collection / "the-night-cafe.png").unlink()
    scan_collection(db, collection, config.catalog)
    with db.read() as s:
        ready = s.scalars(
            select(Artwork).where(Artwork.status == ArtworkStatus.READY).order_by(Artwork.id)
        ).all()
    clips, jobs = ClipStore(db), JobQueue(db)
    audio = np.zeros((4800, 2), np.float32)
    for seed in (1, 2):
        clip = GeneratedClip(audio, 48000, seed, 5.0)
        clips.put(image_hash=ready[0].image_hash, artwork_id=ready[0].id, engine=ToneEngine(), clip=clip)
    failed = jobs.enqueue(
        JobKind.PREGENERATE,
        artwork_id=ready[1].id,
        image_hash=ready[1].image_hash,
        engine="tone",
        max_attempts=1,
    )
    assert jobs.claim("w1") is not None
    jobs.fail(failed, "engine error: the image has no colours", "w1")
    jobs.enqueue(JobKind.VISITOR, artwork_id=ready[2].id, image_hash=ready[2].image_hash, engine="tone")
    record_engine(db, "default", "default-1", "no GPU: the default engine runs")
    db.close()
    return collection, db_path, ready[1].path


@pytest.fixture
def real_state(built_state, tmp_path):
    """A copy of the built store of its own (beacons live beside it), and its configuration."""
    collection, built, failed_path = built_state
    db_path = tmp_path / "store" / "art2mus.db"
    db_path.parent.mkdir()
    shutil.copy(built, db_path)
    return load_config(make_config(tmp_path, collection, db_path)), failed_path


def test_the_report_counts_the_real_database(real_state):
    config, failed_path = real_state
    report = health_report(config)
    assert report["artworks"] == {"ready": 7, "invalid": 1, "missing": 1}
    from engine.store.clips import encode_flac

    one_file = len(encode_flac(np.zeros((4800, 2), np.float32), 48000))  # both clips are this audio
    assert report["clips"] == {
        "ready": 1,
        "pending": 1,
        "failed": 1,
        "stored": 2,
        "bytes": 2 * one_file,
        "in_database": 0,
    }
    assert (
        report["engine"]["name"] == "default"
        and report["engine"]["reason"] == "no GPU: the default engine runs"
    )
    assert report["engine"]["running"] is False and report["uptime_s"] is None and not report["ok"]
    assert report["last_errors"][0]["source"] == "job"
    assert report["last_errors"][0]["message"] == f"{failed_path}: engine error: the image has no colours"
    assert report["disk"]["free_bytes"] > 0
    assert report["audio"]["running"] is False
    assert report["security"] == {"default_pin": False} and report["warnings"] == []
    json.dumps(report)  # plain JSON


def test_status_json_is_the_report_and_status_says_it_in_words(real_state, tmp_path):
    config, _ = real_state
    with BeaconWriter(config.store.database, ServiceName.ENGINE) as _beacon:
        result = CliRunner().invoke(main, ["--config", str(config.source), "status", "--json"])
        words = CliRunner().invoke(main, ["--config", str(config.source), "status"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    expected = health_report(config)
    for key in ("artworks", "clips", "security", "warnings", "database"):
        assert printed[key] == expected[key]
    assert printed["engine"]["running"] is True and printed["ok"] is True
    assert printed["services"][0]["service"] == "engine" and printed["services"][0]["pid"] == os.getpid()
    assert words.exit_code == 0
    assert "1 artworks with music, 1 pending, 1 failed" in words.output
    assert "7 ready, 1 invalid, 1 missing" in words.output


def test_status_without_a_database_says_so_and_creates_nothing(tmp_path, collection):
    db_path = tmp_path / "none" / "art2mus.db"
    config = make_config(tmp_path, collection, db_path)
    result = CliRunner().invoke(main, ["--config", str(config), "status", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["last_errors"][0]["message"].endswith("no database yet (no service has started)")
    assert not db_path.parent.exists()


def test_the_default_pin_is_said_plainly(tmp_path, collection, db_path):
    config = load_config(make_config(tmp_path, collection, db_path, pin=None))
    report = health_report(config)
    assert report["security"]["default_pin"] is True and DEFAULT_PIN_WARNING in report["warnings"]
    result = CliRunner().invoke(main, ["--config", str(config.source), "status"])
    assert "WARNING   the curator PIN is the shipped default" in result.output


def test_beacons_report_the_kiosk_audio_and_two_engines(real_state):
    config, _ = real_state
    database = config.store.database
    audio = {
        "running": True,
        "healthy": True,
        "device": "dummy",
        "underruns": 3,
        "restarts": 1,
        "last_error": None,
    }
    with (
        BeaconWriter(database, ServiceName.KIOSK, extra=lambda: {"audio": audio}),
        BeaconWriter(database, "engine"),
    ):
        # A second engine service on the same database (another live process: our parent).
        other = BeaconWriter(database, ServiceName.ENGINE)
        other.pid = os.getppid()
        other.path = other.folder / f"engine-{other.host}-{other.pid}.json"
        other.write()
        report = health_report(config)
        other.path.unlink()
    assert report["audio"] == {**audio, "running": True}
    assert {(s["service"], s["alive"]) for s in report["services"]} == {
        ("kiosk", True),
        ("engine", True),
    }
    assert len(report["services"]) == 3
    assert any("2 engine services run on this database" in w for w in report["warnings"])
    # Stopped cleanly: its beacon is gone.
    assert read_beacons(database) == []


def test_a_stale_beacon_is_not_alive(real_state):
    config, _ = real_state
    writer = BeaconWriter(config.store.database, ServiceName.ENGINE, interval=0.05)
    writer.start()
    writer._stop.set()
    writer._thread.join()
    time.sleep(0.3)
    (beacon,) = read_beacons(config.store.database)
    assert not beacon.alive
    assert health_report(config)["engine"]["running"] is False
    writer.stop()


# -- the HTTP endpoint ------------------------------------------------------------------------


def request(server: HealthServer, method: str, path: str = "/health") -> tuple[int, dict, dict]:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=5)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        body = response.read()
        return response.status, dict(response.getheaders()), json.loads(body) if body else {}
    finally:
        conn.close()


@pytest.fixture
def server(real_state):
    config, _ = real_state
    server = HealthServer(f"127.0.0.1:{free_port()}", lambda: health_report(config)).start()
    yield server
    server.stop()


def test_get_health_serves_the_report_on_loopback(server, real_state):
    config, _ = real_state
    assert server.server_address[0] == "127.0.0.1"
    status, headers, body = request(server, "GET")
    assert status == 200 and headers["Content-Type"] == "application/json"
    expected = health_report(config)
    for key in ("artworks", "clips", "engine", "security", "last_errors", "services"):
        assert body[key] == expected[key]
    assert request(server, "GET", "/nothing")[0] == 404


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
def test_anything_but_get_is_refused(server, method):
    status, headers, _ = request(server, method)
    assert status == 405 and headers["Allow"] == "GET"


def test_the_server_does_not_answer_on_other_addresses(server):
    """Bound to 127.0.0.1: the machine's other addresses get no answer."""
    others = {
        info[4][0]
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        if not info[4][0].startswith("127.")
    }
    for address in others:
        with socket.socket() as s:
            s.settimeout(2)
            with pytest.raises(OSError):
                s.connect((address, server.server_address[1]))


# -- systemd's notify protocol over a real socket ---------------------------------------------


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_notify_sends_datagrams_and_is_a_no_op_outside_systemd(notify_socket, monkeypatch):
    assert notify("READY=1\nSTATUS=serving")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=serving"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert notify("READY=1") is False


def test_notify_speaks_to_an_abstract_socket(monkeypatch):
    name = f"art2mus-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert notify("WATCHDOG=1")
        assert sock.recv(64) == b"WATCHDOG=1"


def test_a_child_that_inherited_the_socket_keeps_quiet(notify_socket, monkeypatch):
    monkeypatch.setenv("WATCHDOG_PID", str(os.getppid()))  # systemd watches our parent
    assert notify("READY=1") is False
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert notify("READY=1") and notify_socket.recv(64) == b"READY=1"


def test_watchdog_period_comes_from_systemd(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    assert watchdog_seconds() == 4.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert watchdog_seconds() is None  # meant for another process


def test_the_watchdog_pings_only_while_alive(notify_socket):
    trouble: list[str | None] = [None]
    dog = Watchdog(lambda: trouble[0], period=0.1)
    assert dog.start()
    try:
        assert notify_socket.recv(64) == b"WATCHDOG=1"
        trouble[0] = "the worker loop has not turned for 901 s"
        time.sleep(0.15)  # a ping may be in flight
        while True:
            try:
                notify_socket.settimeout(0.01)
                notify_socket.recv(64)
            except TimeoutError:
                break
        notify_socket.settimeout(0.3)
        with pytest.raises(TimeoutError):
            notify_socket.recv(64)
        trouble[0] = None
        notify_socket.settimeout(5)
        assert notify_socket.recv(64) == b"WATCHDOG=1"
    finally:
        dog.stop()


def test_a_damaged_database_is_reported_not_a_traceback(real_state):
    config, _ = real_state
    database = config.store.database
    with open(database, "r+b") as fh:
        fh.write(b"this is no longer an SQLite header")
    result = CliRunner().invoke(main, ["--config", str(config.source), "status", "--json"])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    report = json.loads(result.output)
    assert report["ok"] is False and report["artworks"]["ready"] is None
    assert report["last_errors"][0]["source"] == "database"
    assert "file is not a database" in report["last_errors"][0]["message"]
    assert report["last_errors"][0]["message"].startswith(str(database))


def test_the_engines_loop_pulse_counts_turns_and_waits_as_alive():
    import threading

    from engine.service import LoopPulse

    stop = threading.Event()
    pulse = LoopPulse(stop)
    pulse.last_turn -= 100
    assert pulse.idle_seconds() >= 100
    assert pulse.is_set() is False and pulse.idle_seconds() < 1  # a turn of Worker.run's loop
    pulse.last_turn -= 100
    waiter = threading.Thread(target=pulse.wait, args=(5,))
    waiter.start()
    time.sleep(0.05)
    assert pulse.idle_seconds() == 0.0  # waiting for work on purpose
    pulse.set()  # SIGTERM sets the service's stop event through it
    waiter.join()
    assert stop.is_set() and pulse.idle_seconds() < 1


def test_the_stores_active_conditions_are_last_errors_until_they_end(tmp_path, collection, db_path):
    from engine.store.conditions import Conditions
    from engine.store.faults import Fault

    config = load_config(None)
    db = Database(db_path)
    conditions = Conditions(db)
    conditions.start(Fault.DISK_FULL, f"{db_path}: database or disk is full")

    report = health_report(config, db_path)
    store = [e for e in report["last_errors"] if e["source"] == "store"]
    assert len(store) == 1 and "disk-full" in store[0]["message"] and str(db_path) in store[0]["message"]
    assert report["ok"] is False  # a store fault makes the installation unhealthy

    conditions.end(Fault.DISK_FULL)
    assert not [e for e in health_report(config, db_path)["last_errors"] if e["source"] == "store"]
    db.close()
