"""From image features to a score: key, mode, tempo, metre, instruments, harmony and notes.

The painting decides the character; the seed only varies the details (which progression of
the mode's family, the melody's motif, the arpeggio's shape), so that several candidates for
one painting sound like takes of the same piece.

How the painting decides (see docs/default-engine.md for the curators' version):

- **Key**: the painting's most memorable colour (palette colour with most coverage x chroma)
  picks the tonic on the circle of fifths, after the old colour-key analogies (red C, orange
  G, amber D, yellow A, lemon E, green F#, blue Eb, violet Bb); darker shades of it move
  the key a fifth flatwards, light ones a fifth sharpwards.
- **Mode**: light, warm paintings are major (Ionian), luminous busy ones Lydian, earthy warm
  ones Mixolydian; darker ones minor (Aeolian), agitated dark ones Dorian, very dark
  contrasting ones Phrygian.
- **Tempo and metre**: busy brushwork and vivid colour move faster (about 50-100 bpm); calm,
  soft paintings are in 3/4. The tempo is then fitted so a whole number of bars fills the clip.
- **Density and register**: busyness sets the notes per bar and whether an arpeggio runs;
  brightness and where the visual mass sits (high or low in the frame) set the register.
- **Instruments**: warm colour schemes get brighter timbres, busy or abstract paintings more
  experimental ones, and each instrument leans towards a colour (see instruments.py).
- **Stereo**: the melody sits on the side where the painting's visual weight is, the
  arpeggio opposite it.
- **Dark, calm paintings** get a slow tempo, a low register, a sustained drone and few notes.

The clip is composed as a loop: its harmony cycles back to the first chord, every note's
start is taken modulo the loop length, and the renderer wraps sounding tails onto the head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from .features import ImageFeatures
from .instruments import ARPEGGIOS, BASSES, MELODIES, PADS, TEXTURES, Instrument

MODES: dict[str, tuple[int, ...]] = {
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "ionian": (0, 2, 4, 5, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "aeolian": (0, 2, 3, 5, 7, 8, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
}
MODE_WORDS = {
    "ionian": "major",
    "aeolian": "minor",
    "lydian": "Lydian",
    "mixolydian": "Mixolydian",
    "dorian": "Dorian",
    "phrygian": "Phrygian",
}

# Chord progressions as 0-based scale degrees, calmest first. Each ends on a chord that
# leads back into its first, so the loop's seam is also a harmonic return.
PROGRESSIONS: dict[str, tuple[tuple[int, ...], ...]] = {
    "ionian": ((0, 3, 0, 4), (0, 5, 3, 4), (0, 3, 5, 4), (0, 2, 5, 3), (0, 4, 5, 3), (0, 1, 3, 4)),
    "lydian": ((0, 1, 0, 4), (0, 1, 5, 4), (0, 2, 1, 4), (0, 1, 2, 1)),
    "mixolydian": ((0, 6, 3, 0), (0, 3, 6, 4), (0, 6, 3, 4), (0, 4, 6, 3)),
    "aeolian": ((0, 5, 2, 6), (0, 3, 5, 4), (0, 6, 5, 6), (0, 3, 6, 2), (0, 5, 3, 4)),
    "dorian": ((0, 3, 0, 3), (0, 1, 2, 3), (0, 6, 3, 0), (0, 2, 3, 6)),
    "phrygian": ((0, 1, 0, 6), (0, 1, 2, 1), (0, 6, 5, 1)),
}

SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")

# Colour -> position on the circle of fifths (0 = C, 1 = G, 2 = D, ...), as (L*a*b* hue
# angle in degrees, position) anchors; hues in between are interpolated. The yellows get
# several anchors because the eye tells ochre, gold, yellow and lemon apart in a narrow range
# of hue angles.
HUE_KEY_ANCHORS = (
    (20.0, -1.0),  # crimson -> F
    (40.0, 0.0),  # red -> C
    (60.0, 1.0),  # orange -> G
    (75.0, 2.0),  # amber -> D
    (88.0, 3.0),  # yellow -> A
    (100.0, 4.0),  # lemon -> E
    (125.0, 5.0),  # yellow-green -> B
    (160.0, 6.0),  # green -> F#
    (200.0, 7.0),  # cyan -> Db
    (250.0, 8.0),  # azure -> Ab
    (290.0, 9.0),  # blue -> Eb
    (320.0, 10.0),  # violet -> Bb
    (380.0, 11.0),  # crimson again (20 + 360) -> F
)


@dataclass(frozen=True)
class Note:
    """One sounding event: a note, or a chord struck together, on one instrument."""

    start: float  # seconds from the loop start (0 <= start < duration)
    length: float  # seconds from note-on to note-off (the release rings on after)
    pitches: tuple[int, ...]
    velocity: int


@dataclass(frozen=True)
class Voice:
    role: str  # "pad", "bass", "melody", "arpeggio", "texture"
    instrument: Instrument
    pan: float  # -1 left .. 1 right
    # Level relative to the melody (1.0), measured while the voice plays: the renderer evens
    # out how loud the SoundFont's instruments are before applying it.
    gain: float
    reverb_send: float
    notes: tuple[Note, ...]


@dataclass(frozen=True)
class Composition:
    duration: float
    tempo: float
    beats_per_bar: int
    bars: int
    tonic: int  # pitch class, 0 = C
    mode: str
    chords: tuple[str, ...]  # chord symbols of the loop, one per chord slot
    voices: tuple[Voice, ...]
    reverb_seconds: float
    density: float  # 0 sparse .. 1 busy
    dark_calm: bool  # slow, low, sparse, over a drone

    @property
    def key_name(self) -> str:
        return f"{note_name(self.tonic, self.tonic, self.mode)} {MODE_WORDS[self.mode]}"

    def note_count(self) -> int:
        return sum(len(n.pitches) for v in self.voices for n in v.notes)

    def describe(self) -> dict:
        """The musical choices, for the clip's details and the benchmark."""
        return {
            "key": note_name(self.tonic, self.tonic, self.mode),
            "mode": self.mode,
            "key_name": self.key_name,
            "tempo_bpm": round(self.tempo, 2),
            "metre": f"{self.beats_per_bar}/4",
            "bars": self.bars,
            "chords": list(self.chords),
            "instruments": {v.role: v.instrument.name for v in self.voices},
            "programs": {v.role: v.instrument.program for v in self.voices},
            "pans": {v.role: round(v.pan, 2) for v in self.voices},
            "notes": {v.role: sum(len(n.pitches) for n in v.notes) for v in self.voices},
            "reverb_seconds": round(self.reverb_seconds, 2),
            "density": round(self.density, 2),
            "dark_calm": self.dark_calm,
        }


# Where each mode starts within its relative major scale (D Dorian shares C major's notes).
MODE_OFFSETS = {"ionian": 0, "dorian": 2, "phrygian": 4, "lydian": 5, "mixolydian": 7, "aeolian": 9}
# Major keys written with flats (F, Bb, Eb, Ab, Db); the others with sharps.
FLAT_MAJORS = {5, 10, 3, 8, 1}


def note_name(pc: int, tonic: int | None = None, mode: str = "ionian") -> str:
    """The name of pitch class ``pc``, spelled with the key signature of ``tonic`` ``mode``."""
    if tonic is None:
        tonic, mode = pc, "ionian"
    relative_major = (tonic - MODE_OFFSETS[mode]) % 12
    return (FLAT_NAMES if relative_major in FLAT_MAJORS else SHARP_NAMES)[pc % 12]


# -- the painting's character ---------------------------------------------------------------


@dataclass(frozen=True)
class Character:
    """The musical character read from the features (all but the seed-dependent details)."""

    tonic: int
    mode: str
    tempo_target: float
    beats_per_bar: int
    density: float  # 0 sparse .. 1 busy
    dark_calm: bool
    timbre_bright: float  # target brightness of timbres
    timbre_odd: float  # target experimental-ness
    # The colour each voice takes its instrument from: (hue, weight, lightness 0..1). The pad
    # follows the colour covering most of the canvas, the melody the colour one remembers,
    # the arpeggio the contrasting accent, the bass the darkest colour.
    colours: dict[str, tuple[float, float, float]]
    melody_center: int  # MIDI note
    pad_center: int
    melody_pan: float
    tension: float  # 0..1: how adventurous the harmony may be
    colour_chords: bool  # add sevenths/ninths
    reverb_seconds: float
    dynamics: float  # 0..1 spread of velocities


def read_character(f: ImageFeatures) -> Character:
    tonic = _tonic(f)
    mode = _mode(f)
    dark_calm = f.brightness < 0.40 and f.busyness < 0.45
    # Busy brushwork and vivid colour move faster; dark calm paintings slow down.
    tempo = 56 + 70 * (f.busyness - 0.45) + 15 * (f.saturation - 0.4) + 12 * (f.brightness - 0.5)
    tempo = float(np.clip(tempo, 46, 104))
    if dark_calm:
        tempo = min(tempo, 56)
    beats = 3 if f.busyness + f.contrast < 0.75 else 4
    # Warm colour schemes -> brighter timbres; darker pictures -> mellower ones.
    timbre_bright = float(np.clip(0.35 + 0.45 * f.warmth + 0.5 * (f.brightness - 0.5), 0.0, 1.0))
    timbre_odd = float(np.clip((f.busyness - 0.35) / 0.8, 0.0, 1.0))
    # Register: lighter paintings and visual mass high in the frame sound higher.
    shift = 10 * (f.brightness - 0.55) - 4 * f.mass_y
    if dark_calm:
        shift -= 7
    return Character(
        tonic=tonic,
        mode=mode,
        tempo_target=float(tempo),
        beats_per_bar=beats,
        density=float(np.clip((f.busyness - 0.2) / 0.65, 0.0, 1.0)),
        dark_calm=dark_calm,
        timbre_bright=timbre_bright,
        timbre_odd=timbre_odd,
        colours=_voice_colours(f),
        melody_center=round(74 + shift),
        pad_center=round(62 + 0.5 * shift),
        melody_pan=float(np.clip(0.6 * f.mass_x, -0.6, 0.6)),
        tension=float(np.clip(0.6 * f.contrast / 0.45 + 0.4 * f.busyness, 0.0, 1.0)),
        colour_chords=f.saturation > 0.38,
        reverb_seconds=float(2.0 + 2.0 * (1 - f.busyness) + 0.8 * (1 - f.brightness)),
        dynamics=float(np.clip(f.contrast / 0.5, 0.2, 1.0)),
    )


def _tonic(f: ImageFeatures) -> int:
    hues, positions = zip(*HUE_KEY_ANCHORS, strict=True)
    h = f.hue if f.hue >= hues[0] else f.hue + 360.0
    position = float(np.interp(h, hues, positions))
    key_colour = max(f.palette, key=lambda c: c.share * c.chroma)
    lightness = key_colour.lab[0]
    # Dark shades of the colour turn the key flatwards, light ones sharpwards (a fifth for
    # every 16 units of L* away from a middle lightness of 62).
    position += (lightness - 62.0) / 16.0
    fifths = math.floor(position + 0.5) % 12
    return (fifths * 7) % 12


def _mode(f: ImageFeatures) -> str:
    light = 3.0 * (f.brightness - 0.52) + 0.3 * f.warmth - 0.5 * (f.contrast - 0.33)
    if light > 0.25:
        if f.busyness > 0.62:
            return "lydian"
        if f.warmth > 0.6 and f.saturation > 0.4:
            return "mixolydian"
        return "ionian"
    if f.brightness < 0.35 and f.contrast > 0.4:
        return "phrygian"
    if f.busyness > 0.68:
        return "dorian"
    return "aeolian"


def _voice_colours(f: ImageFeatures) -> dict[str, tuple[float, float, float]]:
    def entry(colour) -> tuple[float, float, float]:
        # Greys carry no hue: their weight fades out below a chroma of ~30.
        return colour.hue, float(min(1.0, colour.chroma / 30.0)), colour.lab[0] / 100.0

    palette = f.palette
    memorable = max(palette, key=lambda c: c.share * c.chroma)

    def hue_gap(a: float, b: float) -> float:
        return abs((a - b + 180.0) % 360.0 - 180.0)

    contrasting = [c for c in palette if hue_gap(c.hue, memorable.hue) >= 45.0 and c.chroma >= 8.0]
    accent = max(contrasting, key=lambda c: c.share * c.chroma) if contrasting else memorable
    return {
        "pad": entry(palette[0]),
        "melody": entry(memorable),
        "arpeggio": entry(accent),
        "texture": entry(accent),
        "bass": entry(min(palette, key=lambda c: c.lab[0])),
    }


def choose_instrument(
    options: tuple[Instrument, ...], c: Character, role: str, avoid: frozenset[int] | set[int] = frozenset()
) -> Instrument:
    """The instrument whose traits best match the painting's character and the voice's colour."""
    hue, weight, lightness = c.colours[role]
    # A lighter colour asks for a slightly brighter timbre.
    bright = float(np.clip(c.timbre_bright + 0.4 * (lightness - 0.55), 0.0, 1.0))

    def cost(i: Instrument) -> float:
        hue_gap = abs((i.hue - hue + 180.0) % 360.0 - 180.0) / 180.0
        return 2.0 * (i.bright - bright) ** 2 + 2.0 * (i.odd - c.timbre_odd) ** 2 + 0.4 * weight * hue_gap**2

    candidates = [i for i in options if i.program not in avoid] or list(options)
    return min(candidates, key=lambda i: (cost(i), i.program))


# -- the loop --------------------------------------------------------------------------------


@dataclass
class _Grid:
    duration: float
    tempo: float
    beats: int
    bars: int

    @property
    def beat(self) -> float:
        return 60.0 / self.tempo

    @property
    def bar(self) -> float:
        return self.beats * self.beat


def _fit_bars(duration: float, tempo_target: float, beats: int) -> _Grid:
    """A whole number of bars that fills ``duration`` at a tempo near the target.

    Short clips may not hold a whole number of bars of the painting's metre at a sensible
    tempo (5 s of 3/4 is 36 or 72 bpm); then another metre that fits better is used.
    """
    best = None
    for metre in (beats, 4, 3, 2):
        bars = max(1, round(duration * tempo_target / (60.0 * metre)))
        for n in {max(1, bars - 1), bars, bars + 1}:
            tempo = n * metre * 60.0 / duration
            miss = abs(np.log(tempo / tempo_target)) + (0.0 if metre == beats else 0.12)
            if best is None or miss < best[0] - 1e-9:
                best = (miss, metre, n, tempo)
    assert best is not None  # every metre tries at least one bar count
    _, metre, bars, tempo = best
    return _Grid(duration, tempo, metre, bars)


def compose(features: ImageFeatures, duration: float, seed: int) -> Composition:
    """Compose a seamless loop of ``duration`` seconds for the painting."""
    c = read_character(features)
    rng = np.random.default_rng([seed, features.fingerprint() & 0xFFFFFFFF])
    grid = _fit_bars(duration, c.tempo_target, c.beats_per_bar)
    scale = MODES[c.mode]

    slots = _chord_slots(grid, c)
    form = _Form.of(grid)
    progression = _progression(c, seed)
    contrast = _contrast_progression(c, seed, progression)
    degrees = []
    for i, slot in enumerate(slots):
        section = form.section_at(slot.start, grid)
        prog = contrast if section == Section.B else progression
        first = form.first_slot(section, slots, grid)
        degrees.append(prog[(i - first) % len(prog)])
    if len(slots) > 1:
        degrees[-1] = progression[-1]  # always end on the chord that leads home
    chords = [_chord(c.tonic, scale, d, c.colour_chords and i % 2 == 1) for i, d in enumerate(degrees)]

    pad_i = choose_instrument(PADS, c, "pad")
    bass_i = choose_instrument(BASSES, c, "bass", {pad_i.program})
    melody_i = choose_instrument(MELODIES, c, "melody", {pad_i.program})
    voices = [
        Voice("pad", pad_i, 0.0, 0.8, 0.45, tuple(_pad(slots, chords, c, grid, form, pad_i, rng))),
        Voice(
            "bass", bass_i, 0.0, 0.65, 0.15, tuple(_bass(slots, chords, scale, c, grid, form, bass_i, rng))
        ),
        Voice(
            "melody",
            melody_i,
            c.melody_pan,
            1.0,
            0.35,
            tuple(_melody(slots, chords, scale, c, grid, form, melody_i, rng)),
        ),
    ]
    if c.density >= 0.35 and not c.dark_calm:
        arp_i = choose_instrument(ARPEGGIOS, c, "arpeggio", {melody_i.program, pad_i.program})
        arp_pan = -0.45 if c.melody_pan >= 0 else 0.45
        voices.append(
            Voice(
                "arpeggio",
                arp_i,
                arp_pan,
                0.5,
                0.3,
                tuple(_arpeggio(slots, chords, c, grid, form, arp_i, rng)),
            )
        )
    if c.timbre_odd >= 0.55:
        tex_i = choose_instrument(TEXTURES, c, "texture", {melody_i.program})
        # Floating on the side opposite the melody (to the right when the melody is central).
        tex_pan = -0.6 if c.melody_pan > 0 else 0.6
        notes = tuple(_texture(slots, chords, grid, tex_i, rng))
        voices.append(Voice("texture", tex_i, tex_pan, 0.35, 0.6, notes))
    return Composition(
        duration=duration,
        tempo=grid.tempo,
        beats_per_bar=grid.beats,
        bars=grid.bars,
        tonic=c.tonic,
        mode=c.mode,
        chords=tuple(_chord_symbol(c.tonic, c.mode, d) for d in degrees),
        voices=tuple(voices),
        reverb_seconds=c.reverb_seconds,
        density=c.density,
        dark_calm=c.dark_calm,
    )


class Section(StrEnum):
    """The parts of a clip's form: a theme, a contrasting middle, the theme's varied return."""

    A = "A"
    B = "B"
    A2 = "A'"


@dataclass(frozen=True)
class _Form:
    """A-B-A' over the whole clip, in whole bars: the theme (about 40%), a contrast (about a
    third: another progression, new motifs higher up, another arpeggio figure), and the
    theme's return, varied, which leads back into the loop's start. Clips under 6 bars keep
    one section (too short for a form)."""

    b_start: int  # first bar of B
    a2_start: int  # first bar of A'

    @classmethod
    def of(cls, grid: _Grid) -> _Form:
        if grid.bars < 6:
            return cls(grid.bars, grid.bars)
        b = max(2, round(grid.bars * 0.4))
        a2 = max(b + 2, round(grid.bars * 0.75))
        return cls(b, min(a2, grid.bars - 1))

    def section(self, bar: int) -> Section:
        if bar < self.b_start:
            return Section.A
        return Section.B if bar < self.a2_start else Section.A2

    def section_at(self, t: float, grid: _Grid) -> Section:
        return self.section(int(t / grid.bar + 1e-6))

    def first_slot(self, section: Section, slots, grid: _Grid) -> int:
        """Index of the section's first chord (its progression starts there)."""
        return next((i for i, s in enumerate(slots) if self.section_at(s.start, grid) == section), 0)


def _contrast_progression(c: Character, seed: int, progression: tuple[int, ...]) -> tuple[int, ...]:
    """Another progression of the mode for the middle section (never the theme's own)."""
    options = [p for p in PROGRESSIONS[c.mode] if p != progression]
    return options[seed % len(options)] if options else progression[::-1]


@dataclass(frozen=True)
class _Slot:
    """The time span of one chord."""

    start: float
    length: float


def _chord_slots(grid: _Grid, c: Character) -> list[_Slot]:
    """Time spans of the chords: one per bar, two bars each when calm, halves when short."""
    bars_per_chord = 2 if (c.density < 0.3 and grid.bars >= 8 and grid.bars % 2 == 0) else 1
    slot_beats = float(bars_per_chord * grid.beats)
    total_beats = grid.bars * grid.beats
    while total_beats / slot_beats < 2 and slot_beats > 1:
        slot_beats /= 2
    n = round(total_beats / slot_beats)
    length = grid.duration / n
    return [_Slot(i * length, length) for i in range(n)]


def _progression(c: Character, seed: int) -> tuple[int, ...]:
    options = PROGRESSIONS[c.mode]
    # The painting's tension picks how adventurous; the seed varies around that choice.
    base = round(c.tension * (len(options) - 1))
    return options[(base + seed) % len(options)]


def _chord(tonic: int, scale: tuple[int, ...], degree: int, colour: bool) -> tuple[int, ...]:
    """Pitch classes of the diatonic chord on ``degree`` (root first), with a 7th for colour."""
    steps = (0, 2, 4, 6) if colour else (0, 2, 4)
    return tuple((tonic + scale[(degree + s) % 7]) % 12 for s in steps)


def _chord_symbol(tonic: int, mode: str, degree: int) -> str:
    scale = MODES[mode]
    root = (tonic + scale[degree]) % 12
    third = (scale[(degree + 2) % 7] - scale[degree]) % 12
    fifth = (scale[(degree + 4) % 7] - scale[degree]) % 12
    quality = "" if third == 4 else "m"
    if fifth == 6:
        quality = "dim"
    elif fifth == 8:
        quality = "aug"
    return note_name(root, tonic, mode) + quality


def _place(pc: int, low: int, high: int, near: float) -> int:
    """The pitch of class ``pc`` within [low, high] nearest to ``near``."""
    options = [p for p in range(low, high + 1) if p % 12 == pc]
    if not options:
        options = [low + ((pc - low) % 12)]
    return min(options, key=lambda p: (abs(p - near), p))


def _arc(t: float, duration: float) -> float:
    """0 at the loop's start and end, 1 in its middle: a swell that keeps the seam level."""
    return float(np.sin(np.pi * t / duration) ** 2)


def _vel(base: float, spread: float, rng: np.random.Generator) -> int:
    return int(np.clip(round(base + spread * rng.uniform(-1, 1)), 20, 120))


def _pad(slots, chords, c: Character, grid: _Grid, form: _Form, inst: Instrument, rng) -> list[Note]:
    """Sustained chords, voiced close to the previous chord (smooth voice leading); the theme's
    return opens its chords out (drop-2)."""
    notes = []
    prev: list[int] | None = None
    for slot, pcs in zip(slots, chords, strict=True):
        section = form.section_at(slot.start, grid)
        center = c.pad_center
        low, high = max(inst.low, center - 9), min(inst.high, center + 10)
        voicing = _voice(pcs, low, high, center, prev)
        prev = voicing
        if section == Section.A2:
            voicing = _drop_two(voicing, inst.low)
        vel = _vel(
            54 + 8 * c.dynamics + 10 * c.dynamics * _arc(slot.start, slots[-1].start + slot.length), 3, rng
        )
        notes.append(Note(slot.start, slot.length, tuple(voicing), vel))
    return notes


def _drop_two(voicing: list[int], lowest: int) -> list[int]:
    """An open voicing: the second note from the top an octave lower (when the instrument
    reaches it), so the same chord sounds wider."""
    if len(voicing) < 3:
        return voicing
    ordered = sorted(voicing)
    dropped = ordered[-2] - 12
    if dropped < lowest:
        return voicing
    return sorted([dropped, *ordered[:-2], ordered[-1]])


def _voice(pcs: tuple[int, ...], low: int, high: int, center: int, prev: list[int] | None) -> list[int]:
    """A close voicing of the chord: every inversion tried, the smoothest move from ``prev`` kept."""
    best, best_cost = None, None
    for inversion in range(len(pcs)):
        order = pcs[inversion:] + pcs[:inversion]
        for base in range(low, low + 12):
            if base % 12 != order[0]:
                continue
            voicing = [base]
            for pc in order[1:]:
                p = voicing[-1] + ((pc - voicing[-1]) % 12 or 12)
                voicing.append(p)
            if voicing[-1] > high:
                continue
            if prev is not None and len(prev) == len(voicing):
                cost = float(sum(abs(a - b) for a, b in zip(sorted(voicing), sorted(prev), strict=True)))
            else:
                cost = abs(sum(voicing) / len(voicing) - center) * len(voicing)
            if best_cost is None or cost < best_cost:
                best, best_cost = voicing, cost
    if best is None:  # narrow range: stack upwards from the root
        best = [_place(pcs[0], low, high, low + 6)]
        for pc in pcs[1:]:
            best.append(best[-1] + ((pc - best[-1]) % 12 or 12))
    return best


def _bass(slots, chords, scale, c: Character, grid: _Grid, form: _Form, inst: Instrument, rng) -> list[Note]:
    """A drone for dark calm paintings (on the fifth in the middle section), held roots when
    calm, a moving line when busy. The middle section moves more than the theme, and the
    theme's return leads into each next chord with a step from below or above."""
    low, high = max(inst.low, 31), min(inst.high, 52)
    notes = []
    if c.dark_calm:
        tonic = _place(c.tonic, low, high, 38)
        dominant = _place((c.tonic + 7) % 12, low, high, tonic + 4)
        for slot in slots:
            pedal = dominant if form.section_at(slot.start, grid) == Section.B else tonic
            notes.append(Note(slot.start, slot.length, (pedal,), _vel(62, 3, rng)))
        return notes
    for i, (slot, pcs) in enumerate(zip(slots, chords, strict=True)):
        section = form.section_at(slot.start, grid)
        root = _place(pcs[0], low, high, 40)
        fifth = root + 7 if root + 7 <= high else root - 5
        octave = root + 12 if root + 12 <= high + 7 else root
        following = _place(chords[(i + 1) % len(chords)][0], low, high, root)
        leading = _approach(following, scale, c.tonic, low, high + 7, rng) if section == Section.A2 else fifth
        beats = round(slot.length / grid.beat)
        if slot.length < grid.bar * 0.99 or beats < 2:
            line = [(root, beats)]
        elif c.density < 0.45:
            line = {
                Section.A: [(root, beats)],
                Section.B: [(root, beats - beats // 2), (fifth, beats // 2)],
                Section.A2: [(root, beats - 1), (leading, 1)],
            }[section]
        elif c.density < 0.7:
            line = {
                Section.A: [(root, beats - 1), (fifth, 1)],
                Section.B: [(root, beats - beats // 2), (octave, beats // 2 - 1), (fifth, 1)],
                Section.A2: [(root, beats - 1), (leading, 1)],
            }[section]
        else:
            pattern = {
                Section.A: [root, root, fifth, octave],
                Section.B: [root, fifth, octave, fifth],
                Section.A2: [root, root, fifth, leading],
            }[section]
            line = [(pattern[k % len(pattern)] if k < beats - 1 else pattern[-1], 1) for k in range(beats)]
            line[0] = (root, 1)
        t = slot.start
        for k, (pitch, length) in enumerate(line):
            busy = c.density >= 0.7
            held = length * grid.beat * (0.9 if busy else 1.0)
            if k == len(line) - 1 and not busy:
                held = slot.start + slot.length - t  # the last note fills the slot exactly
            first = 72 if c.density < 0.45 else (76 if not busy else 74)
            notes.append(Note(t, held, (pitch,), _vel(first if k == 0 else 65, 4, rng)))
            t += length * grid.beat
    return notes


def _approach(target: int, scale, tonic: int, low: int, high: int, rng) -> int:
    """A scale note a step below (or, by chance or at the bottom of the range, above) the
    next chord's root: the bass walks into the change."""
    steps = [p for p in range(low, high + 1) if (p - tonic) % 12 in scale]
    below = [p for p in steps if target - 3 <= p < target]
    above = [p for p in steps if target < p <= target + 3]
    if below and (not above or rng.random() < 0.7):
        return max(below)
    return min(above) if above else target


def _rhythm(rng, grid: _Grid, per_bar: int) -> list[tuple[int, int]]:
    """A one-bar rhythm on the eighth-note grid: (onset, length) in eighths, starting on 1."""
    cells = 2 * grid.beats
    per_bar = int(np.clip(per_bar, 1, cells))
    others = (
        sorted(rng.choice(np.arange(1, cells), size=per_bar - 1, replace=False).tolist())
        if per_bar > 1
        else []
    )
    onsets = [0, *others]
    ends = [*onsets[1:], cells]
    return [(o, e - o) for o, e in zip(onsets, ends, strict=True)]


def _melody(
    slots, chords, scale, c: Character, grid: _Grid, form: _Form, inst: Instrument, rng
) -> list[Note]:
    """A motif-based line in the clip's form: the theme's two one-bar motifs (A), two new
    motifs a little higher (B), the theme again with its contours turned over and its last
    notes varied (A'); every repeat of a motif varies one of its steps; phrases end long."""
    per_bar = 1 + round(c.density * 4)
    motifs = {
        Section.A: [_rhythm(rng, grid, per_bar), _rhythm(rng, grid, max(1, per_bar - 1))],
        Section.B: [_rhythm(rng, grid, min(per_bar + 1, 2 * grid.beats)), _rhythm(rng, grid, per_bar)],
    }
    motifs[Section.A2] = motifs[Section.A]
    contours = {
        Section.A: [rng.choice([-2, -1, -1, 1, 1, 2], size=8).tolist() for _ in range(2)],
        Section.B: [rng.choice([-2, -1, 1, 1, 2, 3], size=8).tolist() for _ in range(2)],
    }
    contours[Section.A2] = [[-x for x in contour] for contour in contours[Section.A]]
    lift = {Section.A: 0, Section.B: 4, Section.A2: 0}
    eighth = grid.beat / 2
    notes: list[Note] = []
    chord_at = _chord_lookup(slots, chords)
    prev = _place(c.tonic + scale[2], max(inst.low, c.melody_center - 8), min(inst.high, c.melody_center + 9),
                  c.melody_center)  # fmt: skip
    heard: dict[tuple[Section, int], int] = {}
    for bar in range(grid.bars):
        section = form.section(bar)
        center = c.melody_center + lift[section]
        low, high = max(inst.low, center - 8), min(inst.high, center + 9)
        pitches = [p for p in range(low, high + 1) if (p - c.tonic) % 12 in scale]
        t0 = bar * grid.bar
        pcs = chord_at(t0)
        start_bar = {Section.A: 0, Section.B: form.b_start, Section.A2: form.a2_start}[section]
        phrase_pos = (bar - start_bar) % 4
        next_section = form.section(bar + 1) if bar + 1 < grid.bars else Section.A
        last_of_phrase = phrase_pos == 3 or bar == grid.bars - 1 or next_section != section
        # Sparse paintings leave bars of silence for the pad to breathe.
        if c.density < 0.25 and phrase_pos in (1, 3) and not last_of_phrase:
            continue
        if last_of_phrase:
            rhythm = [(0, 2 * grid.beats)] if c.density < 0.5 else [(0, grid.beats), (grid.beats, grid.beats)]
            contour = [-1, -1] if section != Section.B else [1, -1]
        else:
            k = 0 if phrase_pos in (0, 2) else 1
            rhythm, contour = motifs[section][k], list(contours[section][k])
            times = heard.get((section, k), 0)
            heard[(section, k)] = times + 1
            if times:  # a repeat: one step of the contour goes another way
                j = int(rng.integers(len(contour)))
                contour[j] = -contour[j] if rng.random() < 0.5 else contour[j] + (1 if contour[j] > 0 else -1)
        # Open each bar on the chord tone closest to where the line is (a smooth line).
        chord_tones = [p for p in pitches if p % 12 in pcs[:3]]
        current = min(chord_tones or pitches, key=lambda p: (abs(p - prev), p))
        for j, (onset, length) in enumerate(rhythm):
            if j > 0:
                idx = pitches.index(current) if current in pitches else 0
                idx = int(np.clip(idx + contour[(j - 1) % len(contour)], 0, len(pitches) - 1))
                current = pitches[idx]
                if onset % 2 == 0 and current % 12 not in pcs:  # on the beat: prefer chord tones
                    current = min(chord_tones or pitches, key=lambda p: (abs(p - current), p))
            start = t0 + onset * eighth + rng.uniform(-0.008, 0.008)
            swell = 1.0 - abs(phrase_pos - 1.5) / 3.0  # louder mid-phrase
            vel = _vel(62 + 14 * c.dynamics * swell + (4 if section == Section.B else 0), 5, rng)
            notes.append(Note(start % grid.duration, length * eighth * 0.92, (current,), vel))
            prev = current
    return notes


def _chord_lookup(slots, chords):
    def at(t: float) -> tuple[int, ...]:
        for slot, pcs in zip(slots, chords, strict=True):
            if slot.start - 1e-9 <= t < slot.start + slot.length - 1e-9:
                return pcs
        return chords[-1]

    return at


def _arpeggio(slots, chords, c: Character, grid: _Grid, form: _Form, inst: Instrument, rng) -> list[Note]:
    """Broken chords under the melody, in eighths (sixteenths for very busy paintings); the
    middle section takes another shape in beats, and the theme's return thins to the first
    half of each chord before the loop begins again."""
    per_beat = 4 if (c.density > 0.85 and grid.tempo < 92) else 2
    step = grid.beat / per_beat
    center = c.melody_center - 10
    low, high = max(inst.low, center - 7), min(inst.high, center + 9)
    shapes = {
        "up": lambda n: list(range(n)),
        "updown": lambda n: list(range(n)) + list(range(n - 2, 0, -1)),
        "broken": lambda n: [0, 2, 1, 3][:n] if n >= 4 else [0, 2, 1][:n],
    }
    names = ("up", "updown", "broken")
    first = int(rng.integers(3))
    shape_of = {
        Section.A: shapes[names[first]],
        Section.B: shapes[names[(first + 1 + int(rng.integers(2))) % 3]],
    }
    shape_of[Section.A2] = shape_of[Section.A]
    notes = []
    for slot, pcs in zip(slots, chords, strict=True):
        section = form.section_at(slot.start, grid)
        tones = sorted({_place(pc, low, high, low + 5 + 3 * i) for i, pc in enumerate(pcs)})
        order = shape_of[section](len(tones))
        n = round(slot.length / step)
        for k in range(n):
            if section == Section.B and k % per_beat:
                continue  # the middle section's figure moves in beats: the texture opens up
            if section == Section.A2 and k >= n // 2 and slot is not slots[-1]:
                continue
            pitch = tones[order[k % len(order)]]
            accent = 8 if (k * step) % grid.beat < 1e-6 else 0
            start = slot.start + k * step + rng.uniform(-0.005, 0.005)
            swell = 8 * c.dynamics * _arc(slot.start + k * step, grid.duration)
            notes.append(Note(start % grid.duration, step * 1.8, (pitch,), _vel(46 + accent + swell, 4, rng)))
    return notes


def _texture(slots, chords, grid: _Grid, inst: Instrument, rng) -> list[Note]:
    """Sparse high sounds floating over the music: one every two bars at a free moment."""
    notes = []
    chord_at = _chord_lookup(slots, chords)
    low, high = max(inst.low, 72), min(inst.high, 96)
    for bar in range(0, grid.bars, 2):
        t = bar * grid.bar + float(rng.integers(1, 2 * grid.beats)) * grid.beat / 2
        t = min(t, grid.duration - 1e-3)
        pcs = chord_at(t)
        pitch = _place(pcs[int(rng.integers(len(pcs)))], low, high, (low + high) / 2)
        notes.append(Note(t, grid.beat * 2, (pitch,), _vel(58, 6, rng)))
    return notes
