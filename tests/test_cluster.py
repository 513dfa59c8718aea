"""Pregeneration on Ray (engine/cluster/): a real local Ray (2 CPUs), CPU actors with the default
engine and with a tiny random Art2Mus bundle, the real store and clip folder. The clips the
cluster makes are the clips a worker makes (byte for byte), a second run plans only what is
missing, a changed image is reported and the rest imported, and `art2mus pregenerate --ray`
drives it."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from engine.catalog.images import load_rgb
from engine.catalog.scanner import scan_collection
from engine.cluster.manifest import ClipKey, missing_clips
from engine.config import default_config
from engine.engines.default.engine import DefaultEngine
from engine.store import Database
from engine.store.clips import ClipStore, ImportedClip, clip_params, clip_params_hash, encode_flac
from engine.worker import LOAD_MAX_SIDE, Worker, candidate_seed

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow

PAINTINGS = ("harvest-at-la-crau.png", "the-night-cafe.png", "portrait-of-pere-tanguy.png")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def scanned(tmp_path, demo_dir):
    collection = tmp_path / "collection"
    collection.mkdir()
    for name in PAINTINGS:
        shutil.copy(demo_dir / name, collection)
    config = default_config()
    config.collection.path = collection
    config.store.database = tmp_path / "store" / "art2mus.db"
    config.engine.name = "default"
    config.engine.duration = 5.0
    config.engine.batch_size = 2
    config.engine.candidates = 1  # one clip per painting: the counts below
    db = Database(config.store.database)
    scan_collection(db, collection, config.catalog)
    return db, config


def test_clips_made_on_ray_are_the_workers_clips_and_a_run_resumes(scanned, local_ray, tmp_path):
    from engine.cluster.pipeline import pregenerate_on_ray

    db, config = scanned
    engine = DefaultEngine()
    collection = config.collection.path
    # Changed after the scan (a curator replaced it): reported, not made, the rest goes on.
    changed = collection / PAINTINGS[2]
    changed.write_bytes(changed.read_bytes() + b"\0")
    stage = tmp_path / "shared-stage"

    summary = pregenerate_on_ray(db, config, engine, actors=1, stage=stage)

    assert (summary.planned, summary.imported, summary.skipped) == (3, 2, 0)
    assert len(summary.errors) == 1 and "changed since the manifest" in summary.errors[0]
    assert list(stage.rglob("*.flac")) == []  # copied into the store, staged copies removed
    store = ClipStore(db)
    for name in PAINTINGS[:2]:
        artwork_id = next(e.id for e in _artworks(db) if e.path == name)
        clip = store.playable_for(artwork_id)
        assert clip is not None and clip.chosen and clip.engine == "default"
        # The same clip a worker on this machine makes, byte for byte.
        image = load_rgb(collection / name, max_side=LOAD_MAX_SIDE)
        made = engine.generate(image, 5.0, candidate_seed(clip.image_hash, config.engine.seed, 0))
        assert clip.audio_sha256 == store.files.write(encode_flac(made.audio, made.sample_rate))
        audio, rate = store.load_audio(clip.id)
        assert audio.shape[0] == 5 * rate and clip.loop_end == audio.shape[0]
    # The service's queue sees them as made: only the changed painting (after a rescan) is left.
    scan_collection(db, collection, config.catalog)
    assert Worker(db, engine, config).enqueue_missing() == 1

    # Resume: a second run's manifest holds only what is missing (what was imported is
    # skipped), and an import of clips already stored adds nothing.
    key = ClipKey(engine.name, engine.model_version, clip_params_hash(engine, 5.0))
    (left,) = missing_clips(db, collection, key, candidates=1, base_seed=config.engine.seed)
    assert left.path == str(changed) and left.seed == candidate_seed(left.image_hash, config.engine.seed, 0)
    made = [c for a in _artworks(db) for c in store.clips_for_image(a.image_hash)]
    again = [
        ImportedClip(
            c.image_hash,
            c.artwork_id,
            c.seed,
            c.duration,
            c.sample_rate,
            c.channels,
            c.audio_sha256,
            c.audio_size,
        )
        for c in made
    ]
    assert (
        len(again) == 2
        and store.import_clips(again, "default", engine.model_version, clip_params(engine, 5.0)) == 0
    )
    assert store.count() == 2


def test_pregenerate_command_with_ray_and_the_tiny_art2mus_bundle(scanned, local_ray, tmp_path):
    """The Art2Mus engine (a tiny random bundle, real loading code) in the actors on CPU."""
    from diffusion_helpers import tiny_bundle

    from art2mus.cli import main
    from engine.store.clips import ClipStore

    db, config = scanned
    config_file = tmp_path / "art2mus.toml"
    config_file.write_text(
        f'[collection]\npath = "{config.collection.path}"\n[store]\ndatabase = "{config.store.database}"\n'
        '[engine]\nname = "art2mus"\nduration = 5.0\nsteps = 2\nbatch_size = 2\n[diffusion]\ndevice = "cpu"\nduration = 5.0\n'
    )
    runner = CliRunner()
    args = ["--config", str(config_file), "pregenerate", "--model", str(tiny_bundle()), "--ray", "local"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "made 3 clips on the Ray cluster" in result.output
    clips = [ClipStore(db).playable_for(a.id) for a in _artworks(db)]
    assert all(c is not None and c.engine == "art2mus" and c.chosen for c in clips)
    audio, rate = ClipStore(db).load_audio(clips[0].id)
    assert audio.shape[0] == 5 * rate and np.isfinite(audio).all()
    result = runner.invoke(main, [*args, "--no-scan"])
    assert result.exit_code == 0 and "nothing to do" in result.output
    refused = runner.invoke(
        main, ["--config", str(config_file), "pregenerate", "--ray", "auto", "--gpus", "2"]
    )
    assert refused.exit_code == 2 and "exclude each other" in refused.output


def _artworks(db):
    from sqlalchemy import select

    from engine.store import Artwork

    with db.read() as s:
        return s.scalars(select(Artwork)).all()
