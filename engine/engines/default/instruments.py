"""The General MIDI instruments the composer may choose, with how each one sounds.

Each instrument has three traits the composer matches against the painting:

- ``bright`` 0..1: how brilliant the timbre is (glockenspiel 0.95, cello 0.3). Warm colour
  schemes ask for brighter timbres (what the Art2Mus listening study heard in warm paintings).
- ``odd`` 0..1: how unusual or "experimental" it sounds in ambient music (strings 0.1, sci-fi
  pads and kalimba 0.8). Busy, abstract brushwork asks for more of it.
- ``hue``: the colour it is associated with (L*a*b* hue angle, degrees), loosely after the old
  colour-instrument analogies: strings with reds and browns, brass and reeds with golds,
  woodwinds with greens, bells and glass with blues, choirs with violets.

Programs are 0-based General MIDI numbers (0 = Acoustic Grand Piano).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Instrument:
    program: int
    name: str  # General MIDI name
    words: str  # how a caption calls it ("strings", "a cello drone")
    bright: float
    odd: float
    hue: float
    # Lowest and highest MIDI note it sounds good on.
    low: int = 36
    high: int = 96


PADS = (
    Instrument(48, "String Ensemble 1", "strings", 0.55, 0.10, 30, 40, 88),
    Instrument(49, "String Ensemble 2", "slow strings", 0.40, 0.05, 15, 40, 84),
    Instrument(52, "Choir Aahs", "choir", 0.40, 0.25, 300, 48, 79),
    Instrument(89, "Pad 2 (warm)", "a warm pad", 0.30, 0.30, 50, 36, 84),
    Instrument(88, "Pad 1 (new age)", "a shimmering pad", 0.65, 0.50, 230, 40, 88),
    Instrument(91, "Pad 4 (choir)", "voices", 0.50, 0.55, 280, 40, 84),
    Instrument(92, "Pad 5 (bowed)", "bowed glass", 0.70, 0.65, 200, 48, 88),
    Instrument(94, "Pad 7 (halo)", "a halo pad", 0.60, 0.70, 250, 40, 88),
    Instrument(95, "Pad 8 (sweep)", "a sweeping pad", 0.45, 0.85, 320, 36, 84),
    Instrument(50, "Synth Strings 1", "synth strings", 0.75, 0.45, 90, 40, 88),
    Instrument(19, "Church Organ", "organ", 0.55, 0.20, 265, 36, 84),
    Instrument(61, "Brass Section", "soft brass", 0.85, 0.15, 80, 45, 80),
)

BASSES = (
    Instrument(42, "Cello", "a cello", 0.30, 0.05, 30, 36, 60),
    Instrument(43, "Contrabass", "a double bass", 0.20, 0.05, 10, 28, 52),
    Instrument(32, "Acoustic Bass", "a plucked bass", 0.35, 0.25, 60, 28, 55),
    Instrument(70, "Bassoon", "a bassoon", 0.45, 0.20, 140, 34, 60),
    Instrument(58, "Tuba", "a tuba", 0.55, 0.15, 80, 28, 55),
    Instrument(33, "Electric Bass (finger)", "a round electric bass", 0.45, 0.45, 220, 28, 55),
    Instrument(38, "Synth Bass 1", "a synth bass", 0.65, 0.85, 300, 28, 55),
    Instrument(89, "Pad 2 (warm)", "a low drone", 0.25, 0.40, 260, 28, 55),
)

MELODIES = (
    Instrument(73, "Flute", "a flute", 0.50, 0.10, 150, 60, 96),
    Instrument(68, "Oboe", "an oboe", 0.70, 0.10, 100, 58, 91),
    Instrument(71, "Clarinet", "a clarinet", 0.40, 0.10, 180, 50, 89),
    Instrument(0, "Acoustic Grand Piano", "a piano", 0.55, 0.20, 250, 40, 96),
    Instrument(11, "Vibraphone", "a vibraphone", 0.60, 0.40, 210, 53, 89),
    Instrument(8, "Celesta", "a celesta", 0.85, 0.35, 60, 60, 96),
    Instrument(9, "Glockenspiel", "a glockenspiel", 0.95, 0.45, 85, 67, 100),
    Instrument(40, "Violin", "a violin", 0.75, 0.10, 35, 55, 96),
    Instrument(60, "French Horn", "a horn", 0.50, 0.10, 75, 41, 77),
    Instrument(75, "Pan Flute", "a pan flute", 0.35, 0.45, 130, 60, 96),
    Instrument(79, "Ocarina", "an ocarina", 0.30, 0.55, 160, 60, 91),
    Instrument(108, "Kalimba", "a kalimba", 0.60, 0.75, 40, 48, 89),
    Instrument(14, "Tubular Bells", "tubular bells", 0.70, 0.70, 270, 60, 84),
    Instrument(98, "FX 3 (crystal)", "crystal tones", 0.90, 0.90, 220, 60, 96),
)

ARPEGGIOS = (
    Instrument(46, "Orchestral Harp", "a harp", 0.55, 0.15, 60, 36, 96),
    Instrument(24, "Acoustic Guitar (nylon)", "a nylon guitar", 0.50, 0.20, 30, 40, 84),
    Instrument(12, "Marimba", "a marimba", 0.45, 0.55, 20, 48, 96),
    Instrument(13, "Xylophone", "a xylophone", 0.85, 0.60, 90, 60, 96),
    Instrument(10, "Music Box", "a music box", 0.90, 0.50, 280, 60, 96),
    Instrument(45, "Pizzicato Strings", "pizzicato strings", 0.60, 0.40, 15, 40, 91),
    Instrument(6, "Harpsichord", "a harpsichord", 0.90, 0.30, 70, 41, 89),
    Instrument(0, "Acoustic Grand Piano", "a piano", 0.55, 0.20, 250, 40, 96),
    Instrument(11, "Vibraphone", "a vibraphone", 0.60, 0.40, 210, 53, 89),
    Instrument(108, "Kalimba", "a kalimba", 0.60, 0.75, 40, 48, 89),
)

TEXTURES = (
    Instrument(102, "FX 7 (echoes)", "echoing drops", 0.60, 0.90, 200, 48, 96),
    Instrument(99, "FX 4 (atmosphere)", "an atmosphere", 0.55, 0.85, 120, 48, 96),
    Instrument(112, "Tinkle Bell", "tinkling bells", 1.00, 0.80, 80, 72, 108),
    Instrument(96, "FX 1 (rain)", "rain-like chimes", 0.70, 0.95, 230, 48, 96),
    Instrument(14, "Tubular Bells", "distant bells", 0.70, 0.70, 270, 60, 84),
)
