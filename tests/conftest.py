"""Shared fixtures: real files in temp folders, the demo paintings."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# One compute thread per test process (and its children), set before torch or numpy load. On
# a small machine shared with other work, torch's OpenMP threads wait for each other whenever
# a core is busy elsewhere: the OOM batch test took 10-43 s under load with two threads and
# 0.8-1.6 s with one. The tiny test models gain nothing from more threads. An explicit
# OMP_NUM_THREADS in the environment wins.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "content" / "demo"


@pytest.fixture
def demo_dir() -> Path:
    return DEMO


@pytest.fixture
def demo_paintings() -> list[Path]:
    return sorted(DEMO.glob("*.png"))


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    """A writable copy of the demo collection."""
    dest = tmp_path / "collection"
    shutil.copytree(DEMO, dest)
    return dest


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "art2mus.db"


# The private JACK server and recorder for real-stream audio tests (tests/jack_fixtures.py).
pytest_plugins = ["jack_fixtures", "kiosk_support"]


# Tests marked own_process run in a fresh Python process of their own (a pytest of just that
# test). They kill or freeze the audio server under a live player, which can leave
# PortAudio's process-wide state with calls that never return (an abandoned abort of a
# stream on a server that froze): a real kiosk then asks systemd for a fresh process, and
# the next test of a shared process would hang in its first PortAudio call.
OWN_PROCESS_ENV = "ART2MUS_TEST_IN_OWN_PROCESS"
OWN_PROCESS_TIMEOUT_S = 560  # under the per-test timeout, so the failure is this one's report


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "own_process: runs in a fresh Python process (the test breaks process-wide audio state)"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if os.environ.get(OWN_PROCESS_ENV) == "1" or pyfuncitem.get_closest_marker("own_process") is None:
        return None  # run here, as usual
    import subprocess
    import sys

    command = [sys.executable, "-m", "pytest", pyfuncitem.nodeid, "-q", "-p", "no:cacheprovider"]
    try:
        done = subprocess.run(
            command,
            cwd=pyfuncitem.config.rootpath,
            env={**os.environ, OWN_PROCESS_ENV: "1"},
            capture_output=True,
            text=True,
            timeout=OWN_PROCESS_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"")[-6000:]
        pytest.fail(
            f"{pyfuncitem.nodeid} did not finish in its own process within {OWN_PROCESS_TIMEOUT_S} s:\n{out!r}"
        )
    if done.returncode == 0 and " passed" not in done.stdout and " skipped" in done.stdout:
        pytest.skip(f"skipped in its own process: {done.stdout.strip().splitlines()[-1]}")
    if done.returncode != 0 or " passed" not in done.stdout:
        pytest.fail(
            f"{pyfuncitem.nodeid} failed in its own process (exit {done.returncode}):\n"
            f"{done.stdout[-6000:]}\n{done.stderr[-2000:]}",
            pytrace=False,
        )
    return True
