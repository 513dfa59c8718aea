"""Is this capture a painting of the catalog? Local features with geometric verification.

A straightened capture and a catalogued image of the same painting differ by light, colour
balance, noise, JPEG and a little residual perspective; they show the same brush strokes in
the same places. ORB key points (corners, described by binary tests; OpenCV's fast and free
detector) are matched with Lowe's ratio test, and a RANSAC homography keeps only the matches
that agree on one geometric mapping. Another painting gives a handful of chance matches
that agree on nothing; the same painting gives dozens that agree. A capture is recognised
when the best artwork has at least ``MIN_INLIERS`` inliers making at least ``MIN_INLIER_RATIO``
of its ratio-tested matches.

Catalog features come from the thumbnails the scanner stores (512 px), so recognition needs
no access to the collection folder and reads no full-size file. They are computed once per
image hash and kept while the index lives (the kiosk keeps one; ``refresh`` adds what is new).
For catalogs above ``FULL_SEARCH_LIMIT`` artworks only the ``SHORTLIST`` nearest by the
catalog's colour-and-layout descriptor are verified.

Precision and recall on the test scenes: ``benchmarks/capture_recognition.py``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import cv2
import numpy as np
from sqlalchemy import select

from engine.catalog.images import DESCRIPTOR_KIND, image_descriptor
from engine.catalog.scanner import SOURCE as COLLECTION_SOURCE
from engine.store import Artwork, ArtworkStatus, Database

FEATURE_SIDE = 512
ORB_FEATURES = 800
RATIO = 0.8
RANSAC_PIXELS = 6.0
MIN_INLIERS = 20
MIN_INLIER_RATIO = 0.25
FULL_SEARCH_LIMIT = 300
SHORTLIST = 100


@dataclass(frozen=True)
class Match:
    id: int
    path: str
    title: str
    score: float  # RANSAC inliers / the capture's key points (0..1)
    inliers: int

    def as_dict(self) -> dict:
        return {"id": self.id, "path": self.path, "title": self.title, "score": round(self.score, 4)}


@dataclass
class _Entry:
    id: int
    path: str
    title: str
    image_hash: str
    descriptor: np.ndarray | None
    keypoints: np.ndarray  # (N, 2)
    features: np.ndarray | None  # (N, 32) ORB descriptors


def _grey_at(image: np.ndarray, side: int = FEATURE_SIDE) -> np.ndarray:
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    scale = side / max(grey.shape[:2])
    if abs(scale - 1.0) > 1e-3:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=interp)
    # Local contrast equalisation: light that falls off across the canvas would otherwise
    # move the corners ORB finds in the darker half.
    out: np.ndarray = cv2.createCLAHE(2.0, (8, 8)).apply(grey)
    return out


def orb_features(
    image: np.ndarray,
) -> tuple[np.ndarray, np.ndarray | None]:
    """ORB key point positions and descriptors of an image (BGR or grey) at 512 px."""
    orb = cv2.ORB.create(nfeatures=ORB_FEATURES)
    keypoints, descriptors = orb.detectAndCompute(_grey_at(image), None)
    points = np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2)
    return points, descriptors


def verify(
    query: tuple[np.ndarray, np.ndarray | None],
    candidate: tuple[np.ndarray, np.ndarray | None],
) -> int:
    """RANSAC inliers of the ratio-tested matches between two feature sets (0: no match)."""
    (q_points, q_desc), (c_points, c_desc) = query, candidate
    if q_desc is None or c_desc is None or len(q_desc) < 2 or len(c_desc) < 2:
        return 0
    pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(q_desc, c_desc, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < MIN_INLIERS:
        return 0
    src = q_points[[m.queryIdx for m in good]]
    dst = c_points[[m.trainIdx for m in good]]
    matrix, mask = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_PIXELS)
    if matrix is None or mask is None:
        return 0
    # The capture is already straightened: a true match maps it with no mirror and no collapse.
    if np.linalg.det(matrix[:2, :2]) <= 0.05:
        return 0
    inliers = int(mask.sum())
    return inliers if inliers >= MIN_INLIER_RATIO * len(good) else 0


class CatalogIndex:
    """The catalog's artworks with their features, for recognising captures."""

    def __init__(self, db: Database):
        self.db = db
        self._entries: dict[int, _Entry] = {}
        self._lock = threading.Lock()

    def refresh(self) -> int:
        """Bring the index in step with the catalog; returns how many artworks it holds."""
        with self.db.read() as s:
            rows = s.execute(
                select(Artwork.id, Artwork.image_hash, Artwork.path, Artwork.title)
                .where(Artwork.source == COLLECTION_SOURCE, Artwork.status == ArtworkStatus.READY)
                .where(Artwork.image_hash.is_not(None))
            ).all()
        wanted = {r.id: r for r in rows}
        with self._lock:
            known = {i: e.image_hash for i, e in self._entries.items()}
        stale = [i for i in known if i not in wanted or wanted[i].image_hash != known[i]]
        fresh = [r for r in rows if known.get(r.id) != r.image_hash]
        built = [e for e in (self._build(r.id) for r in fresh) if e is not None]
        with self._lock:
            for i in stale:
                self._entries.pop(i, None)
            for e in built:
                self._entries[e.id] = e
            return len(self._entries)

    def _build(self, artwork_id: int) -> _Entry | None:
        with self.db.read() as s:
            a = s.get(Artwork, artwork_id)
            if a is None or not a.thumbnail or not a.image_hash:
                return None
            thumb = np.frombuffer(a.thumbnail, np.uint8)
            descriptor = (
                np.frombuffer(a.embedding, np.float32)
                if a.embedding and a.embedding_kind == DESCRIPTOR_KIND
                else None
            )
            entry = (a.id, a.path, a.title or "", a.image_hash)
        image = cv2.imdecode(thumb, cv2.IMREAD_COLOR)
        if image is None:
            return None
        points, features = orb_features(image)
        return _Entry(*entry, descriptor=descriptor, keypoints=points, features=features)

    def __len__(self) -> int:
        return len(self._entries)

    def match(self, crop: np.ndarray) -> Match | None:
        """The catalogued painting this straightened (BGR) capture shows, or None."""
        with self._lock:
            entries = list(self._entries.values())
        if not entries:
            return None
        if len(entries) > FULL_SEARCH_LIMIT:
            entries = self._shortlist(crop, entries)
        query = orb_features(crop)
        if query[1] is None:
            return None
        best: tuple[int, _Entry] | None = None
        for entry in entries:
            inliers = verify(query, (entry.keypoints, entry.features))
            if inliers >= MIN_INLIERS and (best is None or inliers > best[0]):
                best = (inliers, entry)
        if best is None:
            return None
        inliers, entry = best
        return Match(entry.id, entry.path, entry.title, inliers / max(1, len(query[0])), inliers)

    @staticmethod
    def _shortlist(crop: np.ndarray, entries: list[_Entry]) -> list[_Entry]:
        query = image_descriptor(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
        with_desc = [e for e in entries if e.descriptor is not None and e.descriptor.shape == query.shape]
        if not with_desc:
            return entries[:SHORTLIST]
        sims = np.stack([e.descriptor for e in with_desc if e.descriptor is not None]) @ query
        order = np.argsort(-sims)[:SHORTLIST]
        return [with_desc[i] for i in order]
