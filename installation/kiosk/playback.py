"""What plays in the room: the artwork a visitor opened, or the nearest one meanwhile.

The UI thread never waits for audio: a clip already prepared (decoded and resampled) in the
player's cache starts its crossfade at once, inside the touch handler; any other clip is
prepared on a worker thread and crossfades in when ready, unless the visitor has moved on.
When an artwork has no clip yet, a visitor job goes to the engine, the nearest ready clip
(by image similarity) plays meanwhile, and :meth:`PlaybackController.refresh` swaps in the
real clip when the engine delivers it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from PyQt6.QtCore import QObject, QRunnable, QThreadPool, pyqtSignal

from .services import ClipChoice, KioskServices

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NowPlaying:
    """What the artwork view says under "Now playing"."""

    artwork_id: int  # the artwork on screen
    caption: str  # the playing clip's caption ("" when nothing plays)
    own: bool  # the artwork's own music (False: the nearest one, while it is composed)
    composing: bool  # its own music is on its way
    source_title: str = ""  # the artwork whose music plays instead


class _Signals(QObject):
    prepared = pyqtSignal(int, object, object)  # token, ClipChoice, PreparedClip or Exception


class _PrepareJob(QRunnable):
    def __init__(self, services: KioskServices, choice: ClipChoice, token: int, signals: _Signals):
        super().__init__()
        self.services, self.choice, self.token, self.signals = services, choice, token, signals

    def run(self) -> None:
        try:
            result = self.services.prepare(self.choice)
        except Exception as exc:  # surfaced in the log; the room keeps its current music
            result = exc
        self.signals.prepared.emit(self.token, self.choice, result)


class PlaybackController(QObject):
    now_playing = pyqtSignal(object)  # NowPlaying
    playing_artwork = pyqtSignal(object)  # artwork id whose card shows "Now playing", or None

    def __init__(self, services: KioskServices, parent: QObject | None = None):
        super().__init__(parent)
        self.services = services
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)  # one decode at a time keeps the UI's core free
        self._signals = _Signals()
        self._signals.prepared.connect(self._on_prepared)
        self._token = 0
        self.target: int | None = None  # the artwork whose music we want
        self.pending: int | None = None  # ...whose own clip is still being composed
        self.playing: ClipChoice | None = None
        self.last_crossfade_at: float | None = None  # perf_counter() of the last crossfade_to
        self.last_info: NowPlaying | None = None

    def play_artwork(self, artwork_id: int, *, visitor: bool = True) -> None:
        """Crossfade the room to this artwork's music (or the nearest, while it is made)."""
        self._token += 1
        self.target = artwork_id
        own = self.services.own_clip(artwork_id)
        if own is not None:
            self.pending = None
            self._play(own, composing=False)
            return
        self.pending = artwork_id
        if visitor:
            try:
                self.services.request_music(artwork_id)
            except Exception:
                log.exception("could not ask the engine for artwork %s", artwork_id)
        fallback = self.services.nearest_ready(artwork_id)
        if fallback is None:
            self._announce(None, composing=True)
            return
        self._play(fallback, composing=True)

    def play_choice(self, choice: ClipChoice) -> None:
        """Play one particular clip (the curator auditions a candidate)."""
        self._token += 1
        self.target = choice.artwork_id
        self.pending = None
        self._play(choice, composing=False)

    def announce(self) -> None:
        """Say again what plays (a page that just opened wants to know)."""
        if self.last_info is not None:
            self.now_playing.emit(self.last_info)

    def refresh(self) -> None:
        """The store changed: if the awaited clip has arrived, crossfade to it."""
        if self.pending is None:
            return
        own = self.services.own_clip(self.pending)
        if own is not None:
            self.pending = None
            self._play(own, composing=False)

    def stop_following(self) -> None:
        """Forget the target (the visitor left); the music plays on."""
        self._token += 1
        self.pending = None

    # -- internals -------------------------------------------------------------------------
    def _play(self, choice: ClipChoice, *, composing: bool) -> None:
        if self.playing is not None and self.playing.clip.id == choice.clip.id:
            self.playing = choice
            self._announce(choice, composing=composing)
            return
        if self.services.is_cached(choice):
            self._start(choice, self.services.prepare(choice), composing)
        else:
            self._announce(choice, composing=composing)  # it starts in a moment
            self.pool.start(_PrepareJob(self.services, choice, self._token, self._signals))

    def _on_prepared(self, token: int, choice: ClipChoice, result) -> None:
        if isinstance(result, Exception):
            log.error("clip %s could not be prepared: %s", choice.clip.id, result)
            return
        if token != self._token:
            return  # the visitor has moved on; the clip stays in the player's cache
        self._start(choice, result, composing=self.pending is not None)

    def _start(self, choice: ClipChoice, prepared, composing: bool) -> None:
        try:
            self.services.crossfade(prepared)
        except Exception:  # e.g. the audio device is being reopened: the visitor still sees it
            log.exception("cannot crossfade to clip %s", choice.clip.id)
            return
        self.last_crossfade_at = time.perf_counter()
        self.playing = choice
        self.playing_artwork.emit(choice.artwork_id)
        self._announce(choice, composing=composing)

    def _announce(self, choice: ClipChoice | None, *, composing: bool) -> None:
        if self.target is None:
            return
        shown = choice
        source_title = ""
        if shown is not None and shown.artwork_id != self.target:
            detail = self.services.detail(shown.artwork_id)
            source_title = detail.title if detail else ""
        self.last_info = NowPlaying(
            artwork_id=self.target,
            caption=shown.clip.caption if shown is not None else "",
            own=shown is not None and shown.artwork_id == self.target,
            composing=composing,
            source_title=source_title,
        )
        self.now_playing.emit(self.last_info)
