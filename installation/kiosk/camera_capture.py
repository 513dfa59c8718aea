"""What the kiosk does with a capture, without Qt: judge the burst, recognise, or add and queue.

Runs on a worker thread (recognition takes tens of milliseconds per catalogued painting seen
as a candidate). A recognised painting is simply that artwork: the kiosk plays its music. A
new one becomes an artwork of the catalog (``engine.capture.keep``) and its clip is queued
ahead of everything (``JobKind.CAPTURE``); the kiosk plays the nearest ready clip meanwhile
and crossfades to the fresh one when the engine stores it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from engine.capture.burst import Shot, best_shot
from engine.capture.keep import add_capture, purge_captures
from engine.capture.recognise import CatalogIndex, Match
from engine.config import CaptureConfig

from .services import KioskServices

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptureOutcome:
    shot: Shot
    artwork_id: int | None = None  # what plays now (None when refused)
    recognised: Match | None = None
    title: str = ""

    @property
    def crop(self) -> np.ndarray | None:
        return self.shot.detection.crop if self.shot.detection is not None else None


class CaptureDesk:
    """The catalog side of the camera view: recognition index, adding captures, purging."""

    def __init__(self, services: KioskServices, config: CaptureConfig, *, thumbnail_size: int = 512):
        self.services = services
        self.config = config
        self.thumbnail_size = thumbnail_size
        self.index = CatalogIndex(services.db)
        self._index_signature: int | None = None
        self._lock = threading.Lock()  # one capture at a time

    def _refresh_index(self) -> None:
        signature = self.services.signature()
        if signature != self._index_signature:
            self.index.refresh()
            self._index_signature = signature

    def warm_up(self) -> None:
        """Build the recognition index now (a worker thread at start), not at the first capture."""
        with self._lock:
            self._refresh_index()

    def take(self, frames: list[np.ndarray], *, whole: bool = False) -> CaptureOutcome:
        """The best shot of ``frames``; recognised, or added to the catalog with its job queued."""
        shot = best_shot(frames, whole=whole)
        if not shot.ok or shot.detection is None:
            return CaptureOutcome(shot)
        with self._lock:
            self._refresh_index()
            match = self.index.match(shot.detection.crop)
            if match is not None:
                log.info("capture recognised: %s (%d matching points)", match.path, match.inliers)
                return CaptureOutcome(shot, match.id, match, match.title or match.path)
            stored = add_capture(
                self.services.db,
                shot.detection.crop,
                self.config.folder,
                frame=shot.frame if self.config.keep_full_frame else None,
                thumbnail_size=self.thumbnail_size,
            )
        self.services.request_capture_music(stored.artwork_id)
        log.info("new capture: artwork %d (%s)", stored.artwork_id, stored.path)
        return CaptureOutcome(shot, stored.artwork_id, None, stored.title)

    def purge(self, *, all_of_them: bool = False) -> int:
        """Remove captures past ``capture.keep_hours`` (every one with ``all_of_them``)."""
        keep = None if all_of_them or self.config.keep_hours <= 0 else timedelta(hours=self.config.keep_hours)
        if keep is None and not all_of_them:
            return 0  # "until the kiosk restarts": the start (and exit) purge them
        return purge_captures(self.services.db, self.config.folder, older_than=keep)
