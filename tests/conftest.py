"""Shared fixtures: real files in temp folders, the demo paintings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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
