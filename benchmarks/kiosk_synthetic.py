"""Synthetic stores for the kiosk benchmarks: N artworks with real JPEG thumbnails.

The thumbnails are made with the catalog's own ``make_thumbnail`` from the demo paintings,
colour-shifted into 64 variants and cycled, so the gallery decodes real JPEGs of realistic
size (512 px, like ``catalog.thumbnail_size``). Rows are written in bulk in one transaction.
Descriptors are random unit vectors of the catalog's dimension.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "content" / "demo"

WORDS = [
    "Evening",
    "Morning",
    "Harbour",
    "Garden",
    "Portrait",
    "Study",
    "Olive",
    "Trees",
    "Wheat",
    "Field",
    "Bridge",
    "Night",
    "Café",
    "Sunflowers",
    "Irises",
    "Road",
    "Cypresses",
    "Lilacs",
    "Mountains",
    "Shore",
    "Boats",
    "River",
    "Orchard",
    "Interior",
    "Still",
    "Life",
]
ARTISTS = ("Vincent van Gogh", "Berthe Morisot", "Claude Monet", "Paul Cézanne", "Mary Cassatt",
           "Gustave Caillebotte", "Camille Pissarro", "Alfred Sisley")  # fmt: skip


def thumbnails(count: int = 64, size: int = 512) -> list[bytes]:
    from engine.catalog.images import load_rgb, make_thumbnail

    sources = [load_rgb(p, max_side=size) for p in sorted(DEMO.glob("*.png"))]
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        rgb = sources[i % len(sources)].astype(np.float32)
        rgb = np.clip(rgb * rng.uniform(0.7, 1.2, size=3), 0, 255).astype(np.uint8)
        out.append(make_thumbnail(rgb, size))
    return out


def make_store(path: Path, n: int, *, with_clips: int = 0, files: Path | None = None) -> Path:
    """Create ``path`` with ``n`` ready artworks (and clips for the first ``with_clips``).

    With ``files``, each artwork's image is written there too (its thumbnail JPEG), so the
    artwork view has a real file to load."""
    from sqlalchemy import insert

    from engine.catalog.images import DESCRIPTOR_DIM, DESCRIPTOR_KIND
    from engine.store import Artwork, Database

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    db = Database(path)
    thumbs = thumbnails()
    rng = random.Random(1)
    vecs = np.random.default_rng(2).normal(size=(n, DESCRIPTOR_DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    rows = []
    for i in range(n):
        title = " ".join(rng.sample(WORDS, 2)) + f" No. {i + 1}"
        rows.append(
            dict(
                image_hash=hashlib.sha256(f"artwork-{i}".encode()).hexdigest(),
                path=f"synthetic/{i:05d}.jpg",
                source="collection",
                title=title,
                artist=ARTISTS[i % len(ARTISTS)],
                year=str(1860 + i % 50),
                description="A synthetic artwork for the kiosk benchmarks.",
                status="ready",
                thumbnail=thumbs[i % len(thumbs)],
                embedding=vecs[i].tobytes(),
                embedding_kind=DESCRIPTOR_KIND,
                width=1600,
                height=1200,
            )
        )
    if files is not None:
        for i, row in enumerate(rows):
            target = files / row["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(thumbs[i % len(thumbs)])
    with db.write() as s:
        s.execute(insert(Artwork), rows)
    if with_clips:
        from engine.engines.base import GeneratedClip
        from engine.store.clips import ClipStore

        class _Tone:
            name, model_version = "tone", "tone-1"

            def params(self):
                return {}

        store = ClipStore(db)
        rate = 24000
        t = np.arange(rate * 5) / rate
        for i in range(with_clips):
            mono = (0.1 * np.sin(2 * np.pi * (110 + 10 * i) * t)).astype(np.float32)
            clip = GeneratedClip(np.stack([mono, mono], 1), rate, i, 5.0, caption=f"tone {i}")
            store.put(image_hash=rows[i]["image_hash"], artwork_id=i + 1, engine=_Tone(), clip=clip)
    db.close()
    return path


class SilentPlayer:
    """The player contract without a sound device, for benchmarks that measure only the UI."""

    def __init__(self):
        self.cache = {}
        self.crossfade_times: list[float] = []

    def start(self):
        pass

    def prepare(self, key, loader, *, loop=None):  # loop: as Player.prepare's (unused: nothing sounds)
        if key not in self.cache:
            self.cache[key] = (key, loader())
        return self.cache[key]

    def is_prepared(self, key):
        return key in self.cache

    def crossfade_to(self, clip, seconds=None):
        import time

        self.crossfade_times.append(time.perf_counter())

    def set_volume(self, v, ramp_seconds=None):
        pass

    def level(self):
        return 0.0

    def spectrum(self, bands):
        return np.zeros(bands, np.float32)

    def telemetry(self):
        return {"device": "silent (benchmark)"}

    def close(self, fade_seconds=0.0):
        pass


def open_kiosk(db_path: Path, player=None, size=(1920, 1080), collection: Path | None = None):
    """A kiosk window (normal mode, locked) on ``db_path``, shown; returns (app, window, backend)."""
    from engine.config import default_config
    from installation.kiosk.app import build_window, create_application
    from installation.kiosk.backend import KioskBackend

    app = create_application()
    config = default_config()
    if collection is not None:
        config.collection.path = collection
    backend = KioskBackend(config, db_path=db_path, player=player or SilentPlayer())
    window = build_window(backend, config, windowed=False)
    window.resize(*size)
    window.show()
    return app, window, backend


def start_private_jack(name: str):
    """A jackd on the dummy driver named ``name`` (None if jackd is missing); stop it with
    ``proc.terminate()``. Set JACK_DEFAULT_SERVER=name before PortAudio starts."""
    import shutil
    import subprocess
    import time

    if shutil.which("jackd") is None:
        return None
    proc = subprocess.Popen(
        ["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "1024"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        if subprocess.run(["jack_lsp", "-s", name], capture_output=True).returncode == 0:
            return proc
        time.sleep(0.1)
    proc.terminate()
    return None


def real_player():
    """The installation's Player, started (on JACK_DEFAULT_SERVER when set)."""
    from engine.config import AudioConfig
    from installation.audio import Player

    player = Player(AudioConfig(), on_fatal=lambda reason: None)
    if not player.start():
        raise RuntimeError("the player could not open an audio device")
    return player
