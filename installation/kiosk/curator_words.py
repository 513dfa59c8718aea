"""The curator panel's words: statuses and reasons in plain words (the technical detail
kept for those who ask), low-resolution notes, and what tells candidates apart.

Pure Python (no widgets), so each wording is tested on its own.
"""

from __future__ import annotations

import re

from engine.store import ArtworkStatus

from .now_playing import split_caption
from .services import ArtworkEntry, MusicState

# Keyed by the plain strings the kiosk's raw SQL reads (ArtworkStatus members equal them).
IMAGE_STATUS: dict[str, str] = {
    ArtworkStatus.READY: "✓ Readable",
    ArtworkStatus.INVALID: "✕ Invalid file",
    ArtworkStatus.MISSING: "– File missing",
}
MUSIC_STATUS = {
    MusicState.READY: "● Music ready",
    MusicState.COMPOSING: "◌ Generating",
    MusicState.WAITING: "○ Waiting",
    MusicState.FAILED: "▲ Failed",
}

# The catalog's reasons (engine/catalog/images.py, walk.py) in words a curator can act on,
# first match wins; the reason itself stays available as the technical detail.
PLAIN_REASONS: tuple[tuple[str, str], ...] = (
    ("decompression bomb", "too large to open safely: save a smaller copy (fewer pixels)"),
    ("truncated", "the file is incomplete or damaged: copy it into the folder again"),
    ("cannot be decoded", "the file is damaged: copy it into the folder again"),
    ("header cannot be read", "the file is damaged: copy it into the folder again"),
    ("claims an empty size", "the file is damaged: copy it into the folder again"),
    ("the file is empty", "the file is empty: copy it into the folder again"),
    ("contains text", "not a picture (a text file)"),
    (
        "not an image in a supported format",
        "not a picture the kiosk can show: save it as JPEG, PNG, WebP or TIFF",
    ),
    ("permission denied", "the kiosk is not allowed to read this file: check its permissions"),
    ("not enough memory", "too large to open on this computer: save a smaller copy"),
    ("not valid UTF-8", "the file name has characters the kiosk cannot show: rename the file"),
)
FAILED_MUSIC = "composing its music failed: press Regenerate to try again"

# A painting shown larger than this many times its own pixels looks soft.
LOW_RESOLUTION_FACTOR = 1.5


def plain_reason(reason: str) -> str:
    """The reason in a curator's words ("" stays "")."""
    low = reason.lower()
    for needle, plain in PLAIN_REASONS:
        if needle.lower() in low:
            return plain
    return reason


def enlargement(entry: ArtworkEntry, area: tuple[int, int]) -> float:
    """How many times its own size the painting view shows this image in ``area``
    (width, height); 0 when its size is unknown."""
    if not entry.width or not entry.height or area[0] <= 0 or area[1] <= 0:
        return 0.0
    return min(area[0] / entry.width, area[1] / entry.height)


def low_resolution_note(entry: ArtworkEntry, area: tuple[int, int], *, short: bool = False) -> str:
    """'◇ Low resolution: shown at 2× its size; a larger scan would look sharper' or "";
    ``short``: '◇ Low resolution: shown at 2×' (the table; the side panel says the rest)."""
    if entry.status != ArtworkStatus.READY:
        return ""
    factor = enlargement(entry, area)
    if factor < LOW_RESOLUTION_FACTOR:
        return ""
    shown = f"{factor:.1f}".rstrip("0").rstrip(".")
    if short:
        return f"◇ Low resolution: shown at {shown}×"
    return f"◇ Low resolution: shown at {shown}× its size; a larger scan would look sharper"


def status_text(entry: ArtworkEntry, area: tuple[int, int] = (0, 0), *, short: bool = False) -> str:
    """What a curator can act on, in plain words (the symbol repeats the words, never colour
    alone); a low-resolution image gets a second line."""
    if entry.status != ArtworkStatus.READY:
        text = IMAGE_STATUS.get(entry.status, entry.status)
        return f"{text}: {plain_reason(entry.reason)}" if entry.reason else text
    text = MUSIC_STATUS[entry.music]
    if entry.music == MusicState.FAILED:
        text = f"{text}: {FAILED_MUSIC}"
    note = low_resolution_note(entry, area, short=short)
    return f"{text}\n{note}" if note else text


def technical_detail(entry: ArtworkEntry) -> str:
    """The exact reason, for whoever needs it (shown when the artwork is selected)."""
    if entry.status != ArtworkStatus.READY:
        return entry.reason
    if entry.music == MusicState.FAILED:
        return entry.music_reason
    return ""


# -- candidates: what tells them apart ------------------------------------------------------

_KEY = re.compile(r" in ([A-G][#b♯♭]? [A-Za-z]+)$")


def _caption_parts(caption: str) -> dict[str, str]:
    """Tempo, key and instruments from a default-engine caption ("" where not found)."""
    plain, detail = split_caption(caption)
    key = _KEY.search(detail)
    return {
        "tempo": detail.split(",", 1)[0] if "," in detail else "",
        "key": key.group(1) if key else "",
        "instruments": plain.split(": ", 1)[1] if ": " in plain else "",
    }


def differences(clip, reference) -> list[str]:
    """What sets ``clip`` apart from ``reference`` (the chosen clip), in a curator's words."""
    out = []
    if clip.engine != reference.engine:
        out.append(f"engine ({reference.engine} → {clip.engine})")
    if clip.seed != reference.seed:
        out.append("seed")
    mine, theirs = _caption_parts(clip.caption), _caption_parts(reference.caption)
    if not any(mine.values()) or not any(theirs.values()):
        if clip.caption != reference.caption:
            out.append("the music's description")
        return out
    for part in ("key", "tempo"):
        if mine[part] != theirs[part]:
            out.append(f"{part} ({theirs[part]} → {mine[part]})")
    if mine["instruments"] != theirs["instruments"]:
        out.append("instruments")
    return out


def describe_clip(clip, chosen) -> str:
    """A candidate as the panel lists it: what it is, its music, and what differs."""
    status = "✓ Chosen: visitors hear this" if clip.chosen else "Candidate"
    score = f" · score {clip.score:.2f}" if clip.score is not None else ""
    lines = [f"{status} · clip {clip.id} · {clip.engine} · seed {clip.seed} · {clip.duration:.0f} s{score}"]
    plain, detail = split_caption(clip.caption)
    lines += [text for text in (plain, detail) if text]
    if not clip.chosen and chosen is not None:
        differ = differences(clip, chosen)
        lines.append("Differs in: " + ", ".join(differ) if differ else "The same as the chosen clip")
    return "\n".join(lines)
