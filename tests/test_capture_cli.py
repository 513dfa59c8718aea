"""`art2mus capture SOURCE [--out DIR] [--db DB] [--json]` on photographs and a video file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from capture_scenes import Variant, make_scene, write_video
from click.testing import CliRunner
from sqlalchemy import select

from art2mus.cli import main
from engine.catalog.scanner import scan_collection
from engine.config import CatalogConfig
from engine.store import Artwork, Database, Job, JobKind
from engine.store.jobs import PRIORITY_CAPTURE

DEMO = Path(__file__).resolve().parent.parent / "content" / "demo"
PAINTINGS = sorted(DEMO.glob("*.png"))
KEYS = {"status", "reason", "corners", "crop", "sharpness", "recognised"}


def _photo(tmp_path: Path, painting: Path, seed: int, variant: Variant = Variant.PLAIN):
    scene = make_scene(painting, seed, variant)
    path = tmp_path / f"{painting.stem}-{variant}-{seed}.jpg"
    cv2.imwrite(str(path), scene.image)
    return path, scene


def _config(tmp_path: Path, *, full_frame: bool = False) -> Path:
    path = tmp_path / "art2mus.toml"
    path.write_text(
        f'[capture]\nfolder = "{tmp_path / "captures"}"\nkeep_full_frame = {str(full_frame).lower()}\n'
    )
    return path


def _run(args: list[str], config: Path):
    return CliRunner().invoke(main, ["-c", str(config), "capture", *args, "--json"])


def test_a_photo_is_captured_and_straightened(tmp_path):
    photo, scene = _photo(tmp_path, PAINTINGS[2], 31)
    result = _run([str(photo), "--out", str(tmp_path / "out")], _config(tmp_path))
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert set(out) == KEYS
    assert out["status"] == "ok" and out["reason"] == "" and out["recognised"] is None
    assert out["crop"] == str(tmp_path / "out" / "capture.png")
    crop = cv2.imread(out["crop"])
    assert crop is not None and crop.shape[0] > 200
    corners = np.array(out["corners"])
    assert corners.shape == (4, 2)
    assert np.linalg.norm(corners - scene.corners, axis=1).max() <= 0.02 * scene.diagonal
    assert 0.5 < out["sharpness"] <= 1.0


@pytest.mark.parametrize(
    ("variant", "words"),
    [(Variant.BLURRED, "hold still"), (Variant.GLARE, "too much glare: step to the side")],
)
def test_a_bad_photo_is_refused_with_exit_3(tmp_path, variant, words):
    photo, _ = _photo(tmp_path, PAINTINGS[4], 32, variant)
    result = _run([str(photo), "--out", str(tmp_path / "out")], _config(tmp_path))
    assert result.exit_code == 3, result.output
    out = json.loads(result.output)
    assert out["status"] == "rejected" and words in out["reason"]
    assert out["crop"] is None
    assert not (tmp_path / "out" / "capture.png").exists()


def test_the_best_frame_of_a_video_is_taken(tmp_path):
    painting = PAINTINGS[6]
    frames = [make_scene(painting, 33, Variant.BLURRED).image] * 3 + [make_scene(painting, 33).image]
    video = write_video(tmp_path / "camera.avi", frames)
    result = _run([str(video), "--out", str(tmp_path)], _config(tmp_path))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["status"] == "ok"


def test_a_source_that_does_not_exist_is_named(tmp_path):
    result = CliRunner().invoke(main, ["-c", str(_config(tmp_path)), "capture", str(tmp_path / "nope.mp4")])
    assert result.exit_code == 1
    assert "nope.mp4: the file does not exist" in result.output


@pytest.fixture
def catalog(tmp_path) -> Path:
    collection = tmp_path / "collection"
    collection.mkdir()
    for painting in PAINTINGS[:5]:
        shutil.copy(painting, collection / painting.name)
    db_path = tmp_path / "store" / "art2mus.db"
    db_path.parent.mkdir()
    db = Database(db_path)
    scan_collection(db, collection, CatalogConfig())
    db.close()
    return db_path


def test_a_catalogued_painting_is_recognised(tmp_path, catalog):
    photo, _ = _photo(tmp_path, PAINTINGS[1], 34)
    result = _run([str(photo), "--out", str(tmp_path / "out"), "--db", str(catalog)], _config(tmp_path))
    assert result.exit_code == 0, result.output
    recognised = json.loads(result.output.splitlines()[0])["recognised"]
    assert recognised["path"] == PAINTINGS[1].name
    assert recognised["title"] and recognised["score"] > 0
    db = Database(catalog)
    with db.read() as s:
        assert s.scalar(select(Artwork).where(Artwork.source == "camera")) is None
        assert s.scalar(select(Job)) is None


@pytest.mark.parametrize("full_frame", [False, True])
def test_a_new_painting_joins_the_catalog_and_its_music_is_queued_first(tmp_path, catalog, full_frame):
    photo, _ = _photo(tmp_path, PAINTINGS[7], 35)
    config = _config(tmp_path, full_frame=full_frame)
    result = _run([str(photo), "--out", str(tmp_path / "out"), "--db", str(catalog)], config)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.splitlines()[0])["recognised"] is None
    db = Database(catalog)
    with db.read() as s:
        added = s.scalars(select(Artwork).where(Artwork.source == "camera")).one()
        job = s.scalars(select(Job)).one()
        assert added.title.startswith("Camera capture ") and added.embedding and added.thumbnail
        assert job.kind == JobKind.CAPTURE and job.priority == PRIORITY_CAPTURE
        assert job.artwork_id == added.id and job.image_hash == added.image_hash
    stored = Path(added.path)
    assert stored.parent == tmp_path / "captures" and stored.exists()
    frames = list((tmp_path / "captures").glob("*-frame.jpg"))
    assert len(frames) == (1 if full_frame else 0), "the whole frame only when configured"


def test_whole_frame_capture_keeps_the_camera_frame_as_it_is(tmp_path):
    photo, scene = _photo(tmp_path, PAINTINGS[0], 36)
    result = _run([str(photo), "--out", str(tmp_path / "out"), "--whole-frame"], _config(tmp_path))
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert np.array(out["corners"]).max(axis=0).tolist() == [
        scene.image.shape[1] - 1,
        scene.image.shape[0] - 1,
    ]
    assert cv2.imread(out["crop"]).shape == scene.image.shape
