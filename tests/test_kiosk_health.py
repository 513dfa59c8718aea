"""The kiosk's systemd watchdog and beacon: READY=1 and pings over a real NOTIFY_SOCKET only
while the UI timer ticks and the audio callback runs; its audio figures reach the health report."""

from __future__ import annotations

import socket

import pytest

from engine.beacons import read_beacons
from engine.config import Config
from engine.health import health_report
from installation.kiosk.watchdog import KioskHealth


class Services:
    """The telemetry the kiosk's services give (installation/audio/player.py: Player.telemetry)."""

    def __init__(self):
        self.audio = {
            "running": True,
            "healthy": True,
            "device": "dummy",
            "underruns": 2,
            "restarts": 1,
            "last_error": None,
            "seconds_since_callback": 0.02,
            "seconds_since_supervisor": 0.1,
        }

    def telemetry(self):
        return dict(self.audio)


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield sock
    sock.close()


def test_trouble_is_a_frozen_ui_or_a_silent_callback_not_a_recovering_player(tmp_path):
    services = Services()
    health = KioskHealth(services, Config(), tmp_path / "art2mus.db")
    assert health.trouble() is None
    services.audio["seconds_since_callback"] = 12.0
    assert "no audio callback for 12 s" in health.trouble()
    services.audio["healthy"] = False  # the supervisor is reopening the device: its call
    assert health.trouble() is None
    services.audio["seconds_since_supervisor"] = 75.0  # ...but stuck in that call for good
    assert "the audio supervisor has been stuck for 75 s" in health.trouble()
    services.audio["seconds_since_supervisor"] = 3.0  # an open that takes a few seconds is fine
    assert health.trouble() is None
    services.audio = {"running": False}  # no player yet
    assert health.trouble() is None
    health.ui_tick -= 11
    assert "the UI event loop has not run for 11 s" in health.trouble()


def test_the_kiosk_says_ready_pings_and_reports_its_audio(qtbot, tmp_path, notify_socket):
    services = Services()
    config = Config()
    config.store.database = tmp_path / "art2mus.db"
    health = KioskHealth(services, config, config.store.database).start()
    try:
        assert notify_socket.recv(256).startswith(b"READY=1")
        assert notify_socket.recv(64) == b"WATCHDOG=1"
        (beacon,) = read_beacons(config.store.database)
        assert beacon.service == "kiosk" and beacon.alive
        audio = health_report(config)["audio"]
        assert audio["device"] == "dummy" and audio["underruns"] == 2 and audio["restarts"] == 1
        qtbot.wait(600)  # the UI timer ticks while Qt's event loop runs
        assert health.trouble() is None
    finally:
        health.stop()
    messages = []
    while not messages or messages[-1] != b"STOPPING=1":
        messages.append(notify_socket.recv(64))
    assert read_beacons(config.store.database) == []
