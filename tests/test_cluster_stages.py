"""The stages of a cluster run without Ray (engine/cluster/stages.py): what each does with a
good row and a bad one, on real images and a real clip folder."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

from engine.cluster.stages import EngineActor, decode, finish
from engine.config import default_config
from engine.engines.default.engine import DefaultEngine
from engine.store.clip_files import ClipFiles


def test_decode_checks_the_hash_and_reports_a_bad_file(tmp_path, demo_dir):
    painting = tmp_path / "a.png"
    shutil.copy(demo_dir / "harvest-at-la-crau.png", painting)
    digest = hashlib.sha256(painting.read_bytes()).hexdigest()
    row = {"artwork_id": 1, "image_hash": digest, "path": str(painting), "seed": 7}
    good = decode(row, max_pixels=50_000_000)
    assert good["error"] == "" and good["image"].ndim == 3 and max(good["image"].shape[:2]) <= 1024
    painting.write_bytes(b"not an image any more")
    changed = decode(row, max_pixels=50_000_000)
    assert "changed since the manifest" in changed["error"] and changed["image"].shape == (1, 1, 3)
    broken = decode({**row, "image_hash": hashlib.sha256(b"not an image any more").hexdigest()}, 50_000_000)
    assert str(painting) in broken["error"]


def test_an_actor_refuses_another_model_version_than_the_head_nodes():
    with pytest.raises(RuntimeError, match=r"model version .* the head node's wrong"):
        EngineActor(default_config(), "default", "wrong", 5.0, "cpu")


def test_the_actor_generates_good_rows_and_carries_errors_then_finish_stores_files(tmp_path, demo_dir):
    from engine.catalog.images import load_rgb

    actor = EngineActor(default_config(), "default", DefaultEngine().model_version, 5.0, "cpu")
    image = load_rgb(demo_dir / "the-night-cafe.png", max_side=256)
    images = np.empty(2, dtype=object)
    images[0], images[1] = image, np.zeros((1, 1, 3), np.uint8)
    batch = {
        "artwork_id": np.array([1, 2]),
        "image_hash": np.array(["a" * 64, "b" * 64], dtype=object),
        "path": np.array(["x.png", "y.png"], dtype=object),
        "seed": np.array([3, 4]),
        "image": images,
        "error": np.array(["", "y.png: unreadable"], dtype=object),
    }
    out = actor(batch)
    assert (
        out["audio"][0].shape == (5 * out["sample_rate"][0], 2)
        and out["loop_end"][0] == 5 * out["sample_rate"][0]
    )
    assert list(out["error"]) == ["", "y.png: unreadable"]
    rows = [{k: v[i] for k, v in out.items()} for i in range(2)]
    stored = [finish(row, str(tmp_path / "clips")) for row in rows]
    files = ClipFiles(tmp_path / "clips")
    assert stored[0]["audio_size"] == len(files.read(stored[0]["audio_sha256"])) and "audio" not in stored[0]
    assert stored[1]["audio_sha256"] == "" and stored[1]["error"] == "y.png: unreadable"
    assert len(list(files.files())) == 1
