"""The "now playing" line: the composer's choices in plain words.

For example: "slow, warm strings and a harp over a low cello drone in D minor".
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


def make_caption(f: ImageFeatures, c: Composition) -> str:
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
