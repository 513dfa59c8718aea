"""ArtSound's layout → a ``pairs.csv``, as far as the Art2Mus paper describes it.

ArtSound pairs ArtGraph artworks (an image folder, with style and genre from ArtGraph's
metadata) with Free Music Archive tracks (``fma_full``/``fma_large``, whose files live at
``AUDIO_DIR/<first 3 digits>/<6-digit track id>.mp3``, FMA's own ``get_audio_path``). Its pairs
table names an image file and a track id per row. The column names are options because the
released table's headers are not given in the paper; the defaults are the obvious ones.
Rows whose files are absent are counted and left out, never a crash.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from .data import DataError, write_pairs


def fma_audio_path(audio_dir: Path, track_id: int | str) -> Path:
    """FMA's layout: track 2 → ``000/000002.mp3``."""
    tid = f"{int(track_id):06d}"
    return audio_dir / tid[:3] / f"{tid}.mp3"


@dataclass
class ConvertReport:
    written: int = 0
    missing_image: int = 0
    missing_audio: int = 0


def convert_artsound(
    table: str | os.PathLike,
    images: str | os.PathLike,
    audio: str | os.PathLike,
    out_csv: str | os.PathLike,
    *,
    image_column: str = "image",
    track_column: str = "track_id",
    style_column: str = "style",
    genre_column: str = "genre",
    caption_column: str = "caption",
) -> ConvertReport:
    """Write ``out_csv`` (paths relative to its folder) from ArtSound's pairs table."""
    table, images, audio, out_csv = Path(table), Path(images), Path(audio), Path(out_csv)
    report = ConvertReport()
    base = out_csv.parent.resolve()
    rows = []
    with table.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        have = set(reader.fieldnames or [])
        for needed in (image_column, track_column):
            if needed not in have:
                raise DataError(f"{table}: column {needed!r} not found (have {sorted(have)})")
        for n, row in enumerate(reader):
            image = images / row[image_column]
            track = fma_audio_path(audio, row[track_column])
            if not image.is_file():
                report.missing_image += 1
                continue
            if not track.is_file():
                report.missing_audio += 1
                continue
            rows.append(
                {
                    "id": f"{n}",
                    "image": os.path.relpath(image.resolve(), base),
                    "audio": os.path.relpath(track.resolve(), base),
                    "style": row.get(style_column, ""),
                    "genre": row.get(genre_column, ""),
                    "caption": row.get(caption_column, ""),
                }
            )
    report.written = write_pairs(out_csv, rows)
    return report
