"""Demo mode end to end: catalog watcher, default engine (child process), real player."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
from kiosk_support import kiosk_config

from installation.kiosk.services import MusicState, clip_key

pytestmark = pytest.mark.slow


@pytest.fixture
def demo_kiosk(qtbot, collection, tmp_path, player):
    from installation.kiosk.app import build_window, create_application
    from installation.kiosk.backend import KioskBackend

    create_application()
    config = kiosk_config()
    config.engine = dataclasses.replace(config.engine, duration=5.0)
    config.catalog = dataclasses.replace(config.catalog, settle_seconds=0.3)
    backend = KioskBackend(
        config, collection=collection, db_path=tmp_path / "demo.db", demo=True, player=player
    )
    window = build_window(backend, config, windowed=True)
    qtbot.addWidget(window)
    window.resize(1920, 1080)
    window.show()
    backend.start()
    window.backend = backend
    yield window
    from PyQt6.QtWidgets import QApplication

    QApplication.instance().removeEventFilter(window.filter)
    window.allow_close = True
    window.close()
    window.playback.pool.waitForDone(5000)
    window.images.pool.waitForDone(5000)
    backend.close()


def test_demo_mode_scans_composes_plays_and_follows_the_folder(
    qtbot, demo_kiosk, collection, demo_paintings, player
):
    window = demo_kiosk
    qtbot.waitUntil(lambda: window.model.rowCount() == 8, timeout=30000)  # the watcher's first scan
    qtbot.waitUntil(lambda: all(e.music == MusicState.READY for e in window.model.entries()), timeout=120000)
    assert window.backend.services.engine_info.name == "default"
    assert "default" in window.backend.services.engine_info.reason
    # The panel says what the configuration says (auto), not the demo's own override.
    assert "engine.name = 'auto'" in window.backend.services.engine_info.reason

    entry = window.model.entries()[0]
    window.open_artwork(entry.id)
    own = window.backend.services.own_clip(entry.id)
    qtbot.waitUntil(lambda: player.crossfades[-1:] == [clip_key(own.clip.id)], timeout=10000)
    assert own.clip.engine == "default"
    # Plain words first (the mood and the instruments), the musical detail below them.
    plain, detail = own.clip.caption.split("\n")
    assert window.artwork.caption.text().lower() == plain.lower()
    assert window.artwork.detail.text() == detail and "in " in detail
    assert "composed by a computer" in window.artwork.note.text().lower()

    # A curator copies a new painting in while the kiosk runs: it appears, then gets its music.
    from PIL import Image, ImageOps

    staging = collection.parent / "staging.png"  # new content (a mirrored painting), new hash
    ImageOps.mirror(Image.open(demo_paintings[2]).convert("RGB")).save(staging)
    shutil.move(staging, collection / "new-acquisition.png")
    qtbot.waitUntil(lambda: window.model.rowCount() == 9, timeout=30000)
    new = next(e for e in window.model.entries() if e.path == "new-acquisition.png")
    assert new.image_hash not in {e.image_hash for e in window.model.entries() if e.id != new.id}
    qtbot.waitUntil(
        lambda: next(e for e in window.model.entries() if e.id == new.id).music == MusicState.READY,
        timeout=60000,
    )


def test_the_kiosk_starts_without_torch(tmp_path):
    """The kiosk, its demo engine and worker import no torch (that is for the GPU engine)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import art2mus.cli, installation.kiosk.cli, installation.kiosk.app, installation.kiosk.window\n"
        "import installation.kiosk.backend, engine.worker, engine.catalog.watcher\n"
        "from engine.config import default_config\n"
        "from engine.engines.registry import resolve_engine\n"
        "config = default_config(); config.engine.name = 'default'\n"
        "engine, reason = resolve_engine(config)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print('ok', engine.name)\n"
    )
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=120,
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok default", out.stderr[-2000:]


def test_stopping_after_the_demo_engine_was_killed_returns(tmp_path):
    """A demo engine killed from outside while idle (as with its process group when `make
    demo` is stopped) must not keep the kiosk from exiting: stop() used to wait for ever in
    Event.set() for the dead child to acknowledge."""
    import os
    import signal
    import threading
    import time

    engine = _started_demo_engine(tmp_path)  # with no artworks it idles
    time.sleep(1.0)
    os.kill(engine._process.pid, signal.SIGKILL)
    engine._process.join(30)

    stopper = threading.Thread(target=engine.stop, daemon=True)
    stopper.start()
    stopper.join(15)
    assert not stopper.is_alive(), "stop() hangs after the demo engine was killed"


def _started_demo_engine(tmp_path):
    import time

    from engine.config import load_config
    from installation.kiosk.demo_engine import DemoEngineProcess

    engine = DemoEngineProcess(load_config(None), tmp_path / "demo.db", lambda *info: None)
    engine.start()
    deadline = time.monotonic() + 120
    while not engine.ready:
        assert time.monotonic() < deadline, "the demo engine did not start"
        time.sleep(0.2)
    return engine


def test_ctrl_c_leaves_the_demo_engine_to_the_kiosk(tmp_path):
    """Ctrl+C on `make demo` reaches the child too: it printed a KeyboardInterrupt traceback.
    It now ignores it, and stops (exit 0) when the kiosk stops it."""
    import os
    import signal
    import time

    engine = _started_demo_engine(tmp_path)
    os.kill(engine._process.pid, signal.SIGINT)
    time.sleep(1.0)
    assert engine._process.is_alive()
    engine.stop()
    assert engine._process.exitcode == 0


def test_the_demo_engine_ends_when_its_kiosk_dies(tmp_path):
    """A kiosk killed outright (SIGKILL: no cleanup) must not leave its engine running."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from engine.config import load_config\n"
        "from installation.kiosk.demo_engine import DemoEngineProcess\n"
        "engine = DemoEngineProcess(load_config(None), Path(sys.argv[1]), lambda *info: None)\n"
        "engine.start()\n"
        "while not engine.ready: time.sleep(0.2)\n"
        "print('PID', engine._process.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    root = Path(__file__).resolve().parent.parent
    kiosk = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "demo.db")],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # Only our line: pyfluidsynth may print where it found the library first.
        line = next((row for row in kiosk.stdout if row.startswith("PID ")), "")
        assert line, "the stand-in kiosk did not start its demo engine"
        child = int(line.split()[1])
        os.kill(kiosk.pid, signal.SIGKILL)
        kiosk.wait(10)
        deadline = time.monotonic() + 20
        while _alive(child):
            assert time.monotonic() < deadline, "the demo engine outlived its kiosk"
            time.sleep(0.2)
    finally:
        if kiosk.poll() is None:
            kiosk.kill()


def _alive(pid: int) -> bool:
    """The process runs (a zombie waiting for its reaper counts as gone)."""
    import os

    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        return os.path.exists(f"/proc/{pid}")
