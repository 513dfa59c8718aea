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
