"""The "now playing" words: first for everyone, then for the musically curious.

Two lines: the mood and the instruments in plain words ("Calm and warm: strings, a harp
and a cello"), then the composer's choices in musical terms ("slow, warm strings and a
harp over a low cello drone in D minor"). Visitors read the first; the second is there for
those who want it (the kiosk shows it smaller, the curator panel compares candidates by it).
"""

from __future__ import annotations

from .composer import Composition
from .features import ImageFeatures


def tempo_word(bpm: float) -> str:
    if bpm < 60:
        return "slow"
    if bpm < 74:
        return "unhurried"
    if bpm < 88:
        return "flowing"
    return "lively"


def colour_word(f: ImageFeatures, c: Composition) -> str:
    if c.dark_calm:
        return "dark"
    if f.warmth > 0.45:
        return "warm"
    if f.warmth < -0.2:
        return "cool"
    if f.brightness > 0.62:
        return "bright"
    if f.brightness < 0.42:
        return "dusky"
    return "soft"


# The feeling of a tempo, for the plain line.
TEMPO_MOODS = {"slow": "calm", "unhurried": "gentle", "flowing": "flowing", "lively": "lively"}
# Words a visitor may not know, said plainly (the detail line keeps the musician's word).
PLAIN_WORDS = (
    ("drone", "hum"),
    ("pad", "synthesizer"),
    ("a synth ", "an electronic "),
    ("synth ", "electronic "),
)


def make_caption(f: ImageFeatures, c: Composition) -> str:
    """The plain line, a newline, the musical detail."""
    return f"{plain_line(f, c)}\n{musical_detail(f, c)}"


def plain_line(f: ImageFeatures, c: Composition) -> str:
    """'Calm and warm: strings, a piano and a cello' (mood, then the instruments)."""
    colour = colour_word(f, c)
    mood = TEMPO_MOODS[tempo_word(c.tempo)]
    order = ("pad", "melody", "arpeggio", "texture", "bass")
    voices = {v.role: v.instrument.words for v in c.voices}
    names: list[str] = []
    for role in order:
        if role in voices:
            name = _plain(voices[role])
            if name not in names:
                names.append(name)
    feeling = f"{mood} and {colour}" if mood != colour else mood
    return f"{feeling[:1].upper()}{feeling[1:]}: {_join(names)}"


def _plain(words: str) -> str:
    for technical, plain in PLAIN_WORDS:
        words = words.replace(technical, plain)
    return words


def musical_detail(f: ImageFeatures, c: Composition) -> str:
    """'slow, warm strings and a harp over a low cello drone in D minor'."""
    voices = {v.role: v.instrument for v in c.voices}
    upper = [voices["pad"].words]
    for role in ("melody", "arpeggio"):
        if role in voices and voices[role].words not in upper:
            upper.append(voices[role].words)
    if "texture" in voices:
        upper.append(voices["texture"].words)
    upper[0] = _colour(upper[0], colour_word(f, c))
    lead = _join(upper)
    bass = voices["bass"].words
    if c.dark_calm:
        bass = _low_drone(bass)
    else:
        bass = _article_low(bass)
    return f"{tempo_word(c.tempo)}, {lead} over {bass} in {c.key_name}"


def _colour(words: str, colour: str) -> str:
    """ "strings" -> "warm strings"; "a sweeping pad" -> "a soft sweeping pad"."""
    if colour in words.split():
        return words
    for article in ("a ", "an "):
        if words.startswith(article):
            return f"a {colour} {words[len(article) :]}"  # the colour words start with consonants
    return f"{colour} {words}"


def _join(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _article_low(words: str) -> str:
    for article in ("a ", "an "):
        if words.startswith(article):
            rest = words[len(article) :]
            return words if rest.startswith("low ") else "a low " + rest
    return "low " + words


def _low_drone(words: str) -> str:
    if "drone" in words:
        return _article_low(words)
    for article in ("a ", "an "):
        if words.startswith(article):
            return "a low " + words[len(article) :] + " drone"
    return "a low " + words + " drone"
