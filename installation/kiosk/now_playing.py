"""What the room plays, in the words every page uses.

The gallery's heading, the artwork view and attract mode all say whose music plays from one
:class:`RoomMusic`, which :class:`~installation.kiosk.playback.PlaybackController` sends when
a crossfade starts (``cue = CHANGING``: the sound takes seconds to cross, and the screen says
so instead of pretending it already changed) and again when it has ended (``PLAYING``). When
a painting's own music replaces the stand-in that played while it was composed, the cue is
``OWN_ARRIVED`` for the length of that crossfade.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class MusicCue(enum.Enum):
    PLAYING = "playing"  # the room plays this clip
    CHANGING = "changing"  # the crossfade to this clip is under way
    OWN_ARRIVED = "own-arrived"  # ...and it is a painting's own music replacing a stand-in


@dataclass(frozen=True)
class RoomMusic:
    """The clip the room plays (or crossfades to), and whose music it is."""

    clip_id: int
    artwork_id: int  # the artwork the clip was made for
    title: str
    artist: str
    caption: str  # the clip's caption: plain words, then (after a newline) the detail
    engine: str  # the engine that composed it (what the note about its making says)
    cue: MusicCue = MusicCue.PLAYING


def heading_text(room: RoomMusic | None) -> str:
    """The one line that says whose music plays (gallery heading, attract mode)."""
    if room is None:
        return ""
    by = f" · {room.artist}" if room.artist else ""
    if room.cue == MusicCue.OWN_ARRIVED:
        return f"♪  The music composed for “{room.title}”{by} is ready: changing to it…"
    if room.cue == MusicCue.CHANGING:
        return f"♪  The music is changing to that of “{room.title}”{by}…"
    return f"♪  Now playing: the music of “{room.title}”{by}"


def split_caption(caption: str) -> tuple[str, str]:
    """(plain words, musical detail). A one-line caption (an older clip, another engine)
    is all plain words."""
    plain, _, detail = caption.strip().partition("\n")
    plain = plain.strip()
    return plain[:1].upper() + plain[1:], detail.strip()


# How the music was made, in a sentence a visitor can take in at a glance.
ENGINE_NOTES = {
    "art2mus": (
        "Composed by a computer from this painting, with a model trained on "
        "thousands of artworks and their music."
    ),
}
DEFAULT_NOTE = "Composed by a computer from the colours and shapes of this painting."


def making_note(engine: str) -> str:
    return ENGINE_NOTES.get(engine, DEFAULT_NOTE)
