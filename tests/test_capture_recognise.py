"""Recognising a catalogued painting from another photograph of it (real catalog, real scan)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from capture_scenes import make_scene

from engine.capture.burst import assess
from engine.capture.recognise import CatalogIndex
from engine.catalog.scanner import scan_collection
from engine.config import CatalogConfig
from engine.store import Database

DEMO = Path(__file__).resolve().parent.parent / "content" / "demo"
PAINTINGS = sorted(DEMO.glob("*.png"))
CATALOGUED = PAINTINGS[:5]


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> CatalogIndex:
    folder = tmp_path_factory.mktemp("catalog")
    collection = folder / "collection"
    collection.mkdir()
    for painting in CATALOGUED:
        shutil.copy(painting, collection / painting.name)
    db = Database(folder / "art2mus.db")
    scan_collection(db, collection, CatalogConfig())
    idx = CatalogIndex(db)
    assert idx.refresh() == len(CATALOGUED)
    return idx


@pytest.mark.parametrize("painting", PAINTINGS, ids=lambda p: p.stem)
def test_catalogued_paintings_are_recognised_and_others_are_not(index, painting):
    shot = assess(make_scene(painting, 4242).image)
    assert shot.ok and shot.detection is not None
    match = index.match(shot.detection.crop)
    if painting in CATALOGUED:
        assert match is not None, "a catalogued painting, photographed, must be recognised"
        assert match.path == painting.name
        assert 0 < match.score <= 1 and match.inliers >= 20
        assert set(match.as_dict()) == {"id", "path", "title", "score"}
    else:
        assert match is None, f"{painting.name} is not in the catalog but matched {match}"


def test_refresh_follows_the_catalog(index):
    db = index.db
    from sqlalchemy import update

    from engine.store import Artwork, ArtworkStatus

    db.run_change(
        update(Artwork).where(Artwork.path == CATALOGUED[0].name).values(status=ArtworkStatus.MISSING)
    )
    try:
        assert index.refresh() == len(CATALOGUED) - 1
        shot = assess(make_scene(CATALOGUED[0], 4242).image)
        assert shot.detection is not None
        assert index.match(shot.detection.crop) is None
    finally:
        db.run_change(
            update(Artwork).where(Artwork.path == CATALOGUED[0].name).values(status=ArtworkStatus.READY)
        )
        index.refresh()
