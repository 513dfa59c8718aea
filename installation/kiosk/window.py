"""The kiosk window: gallery, artwork view, attract mode, PIN pad and curator panel.

One full-screen window with a stack of pages. The window owns the idle timer (attract
mode), keeps the gallery in step with the store (a cheap poll of the store's fingerprint,
plus an immediate nudge from the catalog watcher / worker in demo mode), and refuses to
close unless the curator panel asked it to.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PyQt6.QtCore import QEvent, QObject, QRunnable, QSize, Qt, QThreadPool, QTimer, pyqtSignal
from PyQt6.QtWidgets import QLayout, QStackedLayout, QWidget

from engine.config import Config, uses_default_pin

from . import style
from .artwork_view import ArtworkPage
from .attract import AttractPage
from .curator import CuratorPanel, PinGuard, PinPad
from .gallery import GalleryModel, GalleryPage
from .images import ImageLoader, screen_side
from .lockdown import KioskEventFilter
from .now_playing import heading_text
from .playback import PlaybackController
from .services import ArtworkEntry, ClipChoice, KioskServices, MusicState
from .thumbnails import ThumbnailCache

log = logging.getLogger(__name__)

POLL_MS = 1500


class _ReadSignals(QObject):
    read = pyqtSignal(object, object)  # signature, entries (or the exception)


class _ReadEntries(QRunnable):
    def __init__(self, services: KioskServices, signature, signals: _ReadSignals):
        super().__init__()
        self.services, self.signature, self.signals = services, signature, signals

    def run(self) -> None:
        result: list[ArtworkEntry] | Exception
        try:
            result = self.services.entries()
        except Exception as exc:  # reported on the UI thread; the gallery keeps what it has
            result = exc
        self.signals.read.emit(self.signature, result)


class StoreNotifier(QObject):
    """Thread-safe nudge: other threads (watcher, worker) say the store changed."""

    changed = pyqtSignal()


class KioskWindow(QWidget):
    page_changed = pyqtSignal(str)

    def __init__(self, services: KioskServices, config: Config, *, locked: bool = True, parent=None):
        super().__init__(parent)
        self.services = services
        self.config = config
        self.kiosk = config.kiosk
        self.locked = locked
        self.allow_close = False
        self.theme = style.Theme(config.kiosk.text_scale)
        self.setWindowTitle("Art2Mus")
        self.setStyleSheet(self.theme.stylesheet())
        self.setFont(self.theme.font("body"))
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)
        self.notifier = StoreNotifier()
        self.notifier.changed.connect(
            self.refresh_from_store,
            Qt.ConnectionType.QueuedConnection,  # type: ignore[call-arg]  # PyQt6 stubs omit the connection type
        )

        self.thumbnails = ThumbnailCache(
            services.thumbnail,
            QSize(self.theme.card_width - 36, self.theme.card_image_height - 36),
            scale=self.devicePixelRatioF(),  # 2 on a 4K screen at QT_SCALE_FACTOR=2
            parent=self,
        )
        self.images = ImageLoader(max_side=screen_side(self.devicePixelRatioF()), parent=self)
        self.model = GalleryModel(self)
        self.playback = PlaybackController(
            services,
            self,
            ready_artworks=self._ready_artworks,
            ambient_seconds=config.audio.ambient_seconds,
            ambient_crossfade_seconds=config.audio.ambient_crossfade_seconds,
            crossfade_seconds=config.audio.crossfade_seconds,
        )

        self.gallery = GalleryPage(self.theme, self.model, self.thumbnails)
        self.artwork = ArtworkPage(self.theme, services)
        self.attract = AttractPage(
            self.theme, self.images, self.kiosk.attract_slide_seconds,
            max_zoom=self.kiosk.attract_max_zoom, motion=self.kiosk.attract_motion,
        )  # fmt: skip
        self.guard = PinGuard(self.kiosk.pin_hash)
        self.pin_pad = PinPad(self.theme, self.guard)
        self.curator = CuratorPanel(self.theme, services, default_pin=lambda: uses_default_pin(config))
        self.pages = {
            "gallery": self.gallery,
            "artwork": self.artwork,
            "attract": self.attract,
            "pin": self.pin_pad,
            "curator": self.curator,
        }
        self.stack = QStackedLayout(self)
        self.stack.setContentsMargins(0, 0, 0, 0)
        # The window is the screen, whatever a page would like: each page fits itself to it
        # (tests/test_kiosk_layouts.py checks that every page does, at every text scale).
        self.stack.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        for page in self.pages.values():
            self.stack.addWidget(page)

        self.gallery.view.artwork_activated.connect(self.open_artwork)
        self.artwork.back_requested.connect(self.show_gallery)
        self.images.loaded.connect(lambda i, img, _err: self.artwork.image_loaded(i, img))
        self.playback.now_playing.connect(self.artwork.set_now_playing)
        self.playback.playing_artwork.connect(self.model.set_playing)
        self.playback.room_music.connect(self._show_room)
        self.attract.slide_changed.connect(lambda i: self.playback.play_artwork(i, visitor=False))
        self.pin_pad.accepted.connect(self.open_curator)
        self.pin_pad.cancelled.connect(self.show_gallery)
        self.curator.closed.connect(self.show_gallery)
        self.curator.exit_requested.connect(self.exit_to_desktop)
        self.curator.audition_requested.connect(self.audition)

        self.idle = QTimer(self)
        self.idle.setSingleShot(True)
        self.idle.setInterval(int(self.kiosk.idle_seconds * 1000))
        self.idle.timeout.connect(self.enter_attract)
        self.poll = QTimer(self)
        self.poll.setInterval(POLL_MS)
        self.poll.timeout.connect(self.refresh_from_store)
        self._signature = None
        self._reading = False
        self._applied = 0  # how many reads have been applied (a stale one is dropped)
        self.reader = QThreadPool(self)
        self.reader.setMaxThreadCount(1)
        self._read_signals = _ReadSignals()
        self._read_signals.read.connect(
            self._on_entries_read,
            Qt.ConnectionType.QueuedConnection,  # type: ignore[call-arg]  # PyQt6 stubs omit the connection type
        )

        self.filter = KioskEventFilter(
            self, locked=locked, long_press_seconds=self.kiosk.long_press_seconds,
            on_press=self._press_consumed,
        )  # fmt: skip
        self.filter.activity.connect(self._on_activity)
        self.filter.corner_long_press.connect(self.open_pin_pad)

        self.refresh_from_store(wait=True)  # the first frame shows the collection
        self.playback.start_ambient()  # ...and the room plays from the first second
        self.poll.start()
        self.idle.start()

    # -- pages -----------------------------------------------------------------------------
    @property
    def page(self) -> str:
        current = self.stack.currentWidget()
        return next(name for name, w in self.pages.items() if w is current)

    def _switch(self, name: str) -> None:
        if self.page == "attract" and name != "attract":
            self.attract.stop()
        self.stack.setCurrentWidget(self.pages[name])
        self.page_changed.emit(name)

    def show_gallery(self) -> None:
        self.playback.stop_following()
        if not self.playback.ambient:
            # The chosen music plays a full turn, then the programme moves on from it.
            self.playback.start_ambient(delay=self.config.audio.ambient_seconds)
        self._switch("gallery")

    def open_artwork(self, artwork_id: int) -> None:
        """A visitor touched an artwork: show it and crossfade the room to its music."""
        self.playback.play_artwork(artwork_id)  # first: the crossfade starts within the touch
        log.info("a visitor opened artwork %s", artwork_id)
        detail = self.services.detail(artwork_id)
        if detail is None:
            return
        image = self.images.request(artwork_id, detail.path)
        self.artwork.show_artwork(detail, image, self.thumbnails.get(artwork_id))
        self.artwork.set_room(self.playback.room)
        self.playback.announce()
        self._switch("artwork")

    def enter_attract(self) -> None:
        if self.page == "attract":
            return
        entries = self.model.entries()
        self.playback.pause_ambient()  # the slides choose the music
        self._switch("attract")
        self.attract.start(entries, self._image_path)

    def _ready_artworks(self) -> list[int]:
        """The artworks with music, in gallery order (the ambient programme's choice)."""
        return [e.id for e in self.model.entries() if e.music == MusicState.READY]

    def _show_room(self, room) -> None:
        """One "Now playing" on every page, from what the room plays."""
        self.gallery.set_room(room)
        self.attract.set_now_playing(heading_text(room))
        self.artwork.set_room(room)

    def _image_path(self, artwork_id: int) -> Path | None:
        """The artwork's file, or None when it has left the gallery (deleted meanwhile)."""
        row = self.model.row_of(artwork_id)
        return self.services.collection / self.model.entry(row).path if row is not None else None

    def open_pin_pad(self) -> None:
        if self.page in ("pin", "curator"):
            return
        self.pin_pad.reset()
        self._switch("pin")

    def open_curator(self) -> None:
        self.curator.open(self.services.volume)
        self._switch("curator")

    def audition(self, clip) -> None:
        self.playback.play_choice(ClipChoice(clip, clip.artwork_id or -1, own=True))

    def exit_to_desktop(self) -> None:
        log.warning("curator exit: the kiosk closes")
        self.allow_close = True
        self.close()
        from PyQt6.QtWidgets import QApplication

        QApplication.instance().quit()

    # -- input -----------------------------------------------------------------------------
    def _on_activity(self) -> None:
        self.idle.start()

    def _press_consumed(self, event: QEvent) -> bool:
        """A touch during attract mode only wakes the kiosk (it does not click through)."""
        if self.page == "attract":
            self.show_gallery()
            return True
        return False

    # -- store -----------------------------------------------------------------------------
    def refresh_from_store(self, *, wait: bool = False) -> None:
        """Bring the gallery in step with the store when it changed.

        The change check costs microseconds and runs on the UI thread; reading the rows
        (tens of milliseconds for 10,000 artworks) runs on a worker thread so that a
        visitor's scrolling never stutters while the engine writes. ``wait`` reads on this
        thread instead (start-up, tests).
        """
        try:
            signature = self.services.signature()
        except Exception:
            log.exception("cannot read the store")
            return
        if signature == self._signature:
            return
        if wait:
            self._apply_entries(signature, self.services.entries())
        elif not self._reading:
            self._reading = True
            token = (signature, self._applied)
            self.reader.start(_ReadEntries(self.services, token, self._read_signals))

    def _on_entries_read(self, token, entries) -> None:
        self._reading = False
        signature, applied_before = token
        if isinstance(entries, Exception):
            log.error("cannot read the catalog: %s", entries)
            return
        if self._applied != applied_before:  # a newer read was applied meanwhile
            self.refresh_from_store()
            return
        self._apply_entries(signature, entries)
        if self.services.signature() != signature:
            self.refresh_from_store()  # it changed again while we read

    def _apply_entries(self, signature, entries) -> None:
        self._signature = signature
        self._applied += 1
        view = self.gallery.view
        position = view.verticalScrollBar().value()
        reset_needed = [e.id for e in entries] != [e.id for e in self.model.entries()]
        changed = self.model.set_entries(entries)
        if changed:
            self.thumbnails.invalidate(changed)
        if reset_needed:
            view.keep_position(position)
        self.playback.refresh()
        if self.page == "curator":
            self.curator.reload()

    # -- window ----------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        if self.locked and not self.allow_close:
            event.ignore()  # only the curator panel may close the kiosk
            return
        self.poll.stop()
        self.idle.stop()
        self.attract.stop()
        self.thumbnails.close()
        self.reader.waitForDone(5000)
        super().closeEvent(event)

    def changeEvent(self, event) -> None:
        if (
            self.locked
            and event.type() == QEvent.Type.WindowStateChange
            and self.windowState() & Qt.WindowState.WindowMinimized
        ):
            QTimer.singleShot(0, self.showFullScreen)  # nobody minimises the kiosk
        super().changeEvent(event)
