"""What plays in the room: the artwork a visitor opened, or the nearest one meanwhile.

The UI thread never waits for audio: a clip already prepared (decoded and resampled) in the
player's cache starts its crossfade at once, inside the touch handler; any other clip is
prepared on a worker thread and crossfades in when ready, unless the visitor has moved on.
When an artwork has no clip yet, a visitor job goes to the engine, the nearest ready clip
(by image similarity) plays meanwhile, and :meth:`PlaybackController.refresh` swaps in the
real clip when the engine delivers it.

The room is never silent: from start, and whenever nobody has chosen, an *ambient programme*
moves through the ready clips, each for ``audio.ambient_seconds``, with slow crossfades
(``audio.ambient_crossfade_seconds``). A visitor's choice stops it at once; going back to the
gallery resumes it after the chosen music has played for a full turn. Attract mode drives
the music with its slides, so the programme pauses while it runs.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from PyQt6.QtCore import QObject, QRunnable, QThreadPool, QTimer, pyqtSignal

from .now_playing import MusicCue, RoomMusic
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


# The first clip of the programme fades in this fast: the room sounds within a second or two.
AMBIENT_FIRST_FADE_SECONDS = 1.5


class PlaybackController(QObject):
    now_playing = pyqtSignal(object)  # NowPlaying
    playing_artwork = pyqtSignal(object)  # artwork id whose card shows "Now playing", or None
    room_music = pyqtSignal(object)  # RoomMusic: what the room plays, as the crossfade goes

    def __init__(
        self,
        services: KioskServices,
        parent: QObject | None = None,
        *,
        ready_artworks: Callable[[], list[int]] | None = None,
        ambient_seconds: float = 90.0,
        ambient_crossfade_seconds: float = 12.0,
        crossfade_seconds: float = 4.0,
    ):
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
        # The ambient programme (see the module doc).
        self.ready_artworks = ready_artworks or (lambda: [])
        self.ambient_seconds = ambient_seconds
        self.ambient_crossfade_seconds = ambient_crossfade_seconds
        self.ambient = False  # the programme chooses the music
        self._ambient_played: list[int] = []  # artworks it played, oldest first
        self._fade_seconds: float | None = None  # the crossfade of the next _start
        self.ambient_timer = QTimer(self)
        self.ambient_timer.setSingleShot(True)
        self.ambient_timer.timeout.connect(self.ambient_next)
        # What the room plays; the cue says "changing" until the crossfade has ended.
        self.crossfade_seconds = crossfade_seconds
        self.room: RoomMusic | None = None
        self.stand_in_for: int | None = None  # the artwork whose stand-in plays now
        self.chooser = "the ambient programme"  # who chose the music (said in the log)
        self.settle_timer = QTimer(self)
        self.settle_timer.setSingleShot(True)
        self.settle_timer.timeout.connect(self._settled)

    # -- the ambient programme ------------------------------------------------------------
    def start_ambient(self, *, delay: float = 0.0) -> None:
        """Let the programme choose the music: the next clip after ``delay`` seconds (0: now,
        or as soon as a clip is ready)."""
        self.ambient = True
        self.pending = None
        if delay > 0:
            self.ambient_timer.start(int(delay * 1000))
        else:
            self.ambient_next()

    def pause_ambient(self) -> None:
        """Something else chooses the music (a visitor, attract mode)."""
        self.ambient = False
        self.ambient_timer.stop()

    def ambient_next(self) -> None:
        """Crossfade slowly to the next ready clip of the programme (least recently played)."""
        if not self.ambient:
            return
        ready = self.ready_artworks()
        if not ready:
            return  # refresh() tries again when the store changes
        playing = self.playing.artwork_id if self.playing is not None else None
        order = {a: i for i, a in enumerate(self._ambient_played)}
        candidates = [a for a in ready if a != playing] or ready
        # Never played first (in gallery order), then the one played longest ago.
        artwork_id = min(candidates, key=lambda a: (a in order, order.get(a, 0), ready.index(a)))
        choice = self.services.own_clip(artwork_id)
        self.ambient_timer.start(int(self.ambient_seconds * 1000))
        if choice is None:
            return
        if artwork_id in order:
            self._ambient_played.remove(artwork_id)
        self._ambient_played.append(artwork_id)
        self.chooser = "the ambient programme"
        self._token += 1
        self.target = None
        self._fade_seconds = (
            AMBIENT_FIRST_FADE_SECONDS if self.playing is None else self.ambient_crossfade_seconds
        )
        self._play(choice, composing=False)

    def play_artwork(self, artwork_id: int, *, visitor: bool = True) -> None:
        """Crossfade the room to this artwork's music (or the nearest, while it is made)."""
        if visitor:
            self.pause_ambient()
        self.chooser = "a visitor" if visitor else "attract mode"
        self._fade_seconds = None
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
        self.pause_ambient()
        self.chooser = "the curator (audition)"
        self._fade_seconds = None
        self._token += 1
        self.target = choice.artwork_id
        self.pending = None
        self._play(choice, composing=False)

    def announce(self) -> None:
        """Say again what plays (a page that just opened wants to know)."""
        if self.last_info is not None:
            self.now_playing.emit(self.last_info)

    def refresh(self) -> None:
        """The store changed: if the awaited clip has arrived, crossfade to it (or, when the
        programme waits for its first clip, start it)."""
        if self.ambient and self.playing is None:
            self.ambient_next()
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
            self.services.crossfade(prepared, self._fade_seconds)
        except Exception:  # e.g. the audio device is being reopened: the visitor still sees it
            log.exception("cannot crossfade to clip %s", choice.clip.id)
            return
        self.last_crossfade_at = time.perf_counter()
        stood_in_for, self.stand_in_for = self.stand_in_for, (self.target if composing else None)
        self.playing = choice
        self.playing_artwork.emit(choice.artwork_id)
        self._announce(choice, composing=composing)
        # Only the painting whose stand-in played hears "its own music is ready".
        stand_in_replaced = choice.own and stood_in_for is not None and choice.artwork_id == stood_in_for
        self._tell_room(choice, MusicCue.OWN_ARRIVED if stand_in_replaced else MusicCue.CHANGING)
        fade = self._fade_seconds if self._fade_seconds is not None else self.crossfade_seconds
        self.settle_timer.start(int(fade * 1000))

    def _tell_room(self, choice: ClipChoice, cue: MusicCue) -> None:
        detail = self.services.detail(choice.artwork_id)
        self.room = RoomMusic(
            clip_id=choice.clip.id,
            artwork_id=choice.artwork_id,
            title=detail.title if detail else "",
            artist=detail.artist if detail else "",
            caption=choice.clip.caption or "",
            engine=choice.clip.engine,
            cue=cue,
        )
        # What `art2mus -v kiosk` shows of the room: each change of music, and who chose it.
        log.info(
            "crossfade to clip %s: the music of %r (artwork %s), chosen by %s%s",
            choice.clip.id,
            self.room.title,
            choice.artwork_id,
            self.chooser,
            "; it replaces the stand-in" if cue == MusicCue.OWN_ARRIVED else "",
        )
        self.room_music.emit(self.room)

    def _settled(self) -> None:
        """The crossfade has ended: the room plays what the screen named."""
        if self.room is not None and self.room.cue != MusicCue.PLAYING:
            self.room = dataclasses.replace(self.room, cue=MusicCue.PLAYING)
            self.room_music.emit(self.room)

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
