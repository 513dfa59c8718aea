"""The train/test split: 90/10 stratified by artistic style, 100 validation artworks from the
test part, written to text files (one pair key a line) so a run is repeatable.

Each style's keys are shuffled with a generator seeded by the split seed, and
``round(test_fraction · n)`` of them go to the test part (at least one where a style has two
or more pairs, so every style is seen on both sides). The validation artworks are drawn from
the test part with the same seed.
"""

from __future__ import annotations

import os
import random
from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from .data import Pair


class Part(StrEnum):
    TRAIN = "train"
    TEST = "test"
    VAL = "val"


@dataclass(frozen=True)
class Split:
    train: list[str]
    test: list[str]
    val: list[str]

    def part(self, part: Part) -> list[str]:
        return {Part.TRAIN: self.train, Part.TEST: self.test, Part.VAL: self.val}[part]


def make_split(
    pairs: list[Pair], *, test_fraction: float = 0.1, val_count: int = 100, seed: int = 0
) -> Split:
    by_style: dict[str, list[str]] = defaultdict(list)
    for pair in pairs:
        by_style[pair.style].append(pair.key)
    rng = random.Random(seed)
    train: list[str] = []
    test: list[str] = []
    for style in sorted(by_style):
        keys = sorted(by_style[style])
        rng.shuffle(keys)
        n_test = round(test_fraction * len(keys))
        if n_test == 0 and len(keys) >= 2:
            n_test = 1
        test += keys[:n_test]
        train += keys[n_test:]
    val = sorted(rng.sample(sorted(test), min(val_count, len(test))))
    return Split(train=sorted(train), test=sorted(test), val=val)


def write_split(split: Split, folder: str | os.PathLike) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for part in Part:
        (folder / f"{part}.txt").write_text("".join(f"{k}\n" for k in split.part(part)), encoding="utf-8")


def read_split(folder: str | os.PathLike) -> Split:
    folder = Path(folder)
    parts = {}
    for part in Part:
        path = folder / f"{part}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: split file missing (made by `art2mus train prepare`)")
        parts[part] = [line for line in path.read_text(encoding="utf-8").splitlines() if line]
    return Split(train=parts[Part.TRAIN], test=parts[Part.TEST], val=parts[Part.VAL])
