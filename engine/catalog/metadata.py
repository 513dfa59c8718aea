"""Curators' metadata: ``catalog.csv``, ``catalog.json`` and ``NAME.json`` sidecars.

Fields of one artwork are merged with this precedence: a sidecar next to the image, then
``catalog.json``, then ``catalog.csv``, then a title made from the file name. A file that
cannot be read or parsed is reported as a :class:`Problem` naming the file (and the line or
key), and whatever else is known is still used: bad metadata never stops an image.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

CATALOG_CSV = "catalog.csv"
CATALOG_JSON = "catalog.json"
FIELDS = ("title", "artist", "year", "description", "style")
FILE_KEYS = ("file", "filename", "path")
# Larger metadata files are refused rather than read into memory.
MAX_METADATA_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Problem:
    """Something wrong with the collection that is not an invalid image: names file and issue."""

    path: str
    reason: str


@dataclass
class Record:
    """Metadata of one artwork from one source."""

    fields: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = ""


@dataclass(frozen=True)
class ArtworkMetadata:
    """The merged metadata of one image, in the shape of the Artwork row's columns."""

    title: str
    artist: str
    year: str
    description: str
    style: str
    extra_json: str
    metadata_source: str

    def as_columns(self) -> dict[str, str]:
        return dict(self.__dict__)


def normalize_key(name: str) -> str:
    """A file reference as written by a curator, as a relative POSIX path."""
    name = name.strip().replace("\\", "/")
    while name.startswith("./"):
        name = name[2:]
    return str(PurePosixPath(name)) if name else ""


def title_from_filename(rel_path: str) -> str:
    """'the-night-cafe.png' -> 'The Night Cafe'; names with capitals are kept as written.

    A name with no letters ('11.jpg') is a camera's or a scanner's number, not a title:
    'Untitled (11)'. (Shown as a bare number in the serif face, "11" reads as "II".)
    """
    stem = PurePosixPath(rel_path).stem
    words = re.sub(r"[_\-\s]+", " ", stem).strip()
    if not words:
        return stem
    if not any(ch.isalpha() for ch in words):
        return f"Untitled ({stem})"
    return words.title() if words == words.lower() else words


def decode_text(data: bytes, name: str, problems: list[Problem]) -> str:
    """UTF-8 (with or without BOM); otherwise Windows-1252 / Latin-1, with a problem noted."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        for encoding in ("cp1252", "latin-1"):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                continue
            problems.append(
                Problem(
                    name,
                    f"line {line}: not UTF-8 text; read as {encoding.upper()} "
                    "(save the file as UTF-8 so that accented letters are certain)",
                )
            )
            return text
    raise AssertionError("latin-1 decodes any bytes")


def _read_file(path: str, name: str, problems: list[Problem]) -> str | None:
    try:
        size = os.stat(path).st_size
        if size > MAX_METADATA_BYTES:
            problems.append(Problem(name, f"too large to read ({size:,} bytes); ignored"))
            return None
        with open(path, "rb") as fh:
            data = fh.read()
    except PermissionError:
        problems.append(Problem(name, "cannot be read (permission denied); ignored"))
        return None
    except OSError as exc:
        problems.append(Problem(name, f"cannot be read ({exc.strerror or exc}); ignored"))
        return None
    return decode_text(data, name, problems)


def _as_text(value: Any) -> str | None:
    if value is None:
        return ""
    if isinstance(value, bool):
        return None
    if isinstance(value, (str, int, float)):
        return str(value).strip()
    return None


def _record(item: dict[str, Any], where: str, source: str, problems: list[Problem], name: str) -> Record:
    rec = Record(source=source)
    for key, value in item.items():
        low = key.strip().lower() if isinstance(key, str) else key
        if low in FILE_KEYS or low == "":
            continue  # (a blank header cell names nothing)
        if low in FIELDS:
            text = _as_text(value)
            if text is None:
                problems.append(Problem(name, f"{where} '{key}': expected text, got {type(value).__name__}"))
            elif text:
                rec.fields[low] = text
        elif value not in (None, ""):
            rec.extra[str(key)] = value
    return rec


def parse_catalog_csv(path: str, name: str = CATALOG_CSV) -> tuple[dict[str, Record], list[Problem]]:
    """Rows of a catalog.csv by the file they name, and the problems found."""
    problems: list[Problem] = []
    text = _read_file(path, name, problems)
    records: dict[str, Record] = {}
    if text is None:
        return records, problems
    first_line = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        problems.append(Problem(name, f"line 1: the header cannot be read ({exc}); file ignored"))
        return records, problems
    if not header:
        problems.append(Problem(name, "the file is empty; expected a header row"))
        return records, problems
    header = [h.strip() for h in header]
    lowered = [h.lower() for h in header]
    file_col = next((lowered.index(k) for k in FILE_KEYS if k in lowered), None)
    if file_col is None:
        problems.append(
            Problem(
                name,
                "line 1: no 'file' column in the header (found: "
                f"{', '.join(repr(h) for h in header)}); file ignored",
            )
        )
        return records, problems
    seen: dict[str, int] = {}
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(Problem(name, f"line {reader.line_num}: {exc}; the rest of the file is ignored"))
            break
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            problems.append(
                Problem(
                    name,
                    f"line {line}: {len(row)} cells but the header has {len(header)}; extra cells ignored",
                )
            )
        key = normalize_key(row[file_col]) if file_col < len(row) else ""
        if not key:
            problems.append(Problem(name, f"line {line}: the 'file' cell is empty; row ignored"))
            continue
        if key in seen:
            problems.append(
                Problem(name, f"line {line}: '{key}' is already on line {seen[key]}; row ignored")
            )
            continue
        seen[key] = line
        item = {header[i]: row[i] for i in range(min(len(row), len(header)))}
        records[key] = _record(item, f"line {line} column", f"{name}:{line}", problems, name)
    return records, problems


def _json_error(name: str, exc: json.JSONDecodeError) -> Problem:
    return Problem(name, f"line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg}); file ignored")


def parse_catalog_json(path: str, name: str = CATALOG_JSON) -> tuple[dict[str, Record], list[Problem]]:
    """Entries of a catalog.json (a list, or {"artworks": [...]}) by the file they name."""
    problems: list[Problem] = []
    text = _read_file(path, name, problems)
    records: dict[str, Record] = {}
    if text is None:
        return records, problems
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(_json_error(name, exc))
        return records, problems
    if isinstance(doc, dict) and isinstance(doc.get("artworks"), list):
        items, prefix = doc["artworks"], "artworks"
    elif isinstance(doc, list):
        items, prefix = doc, ""
    else:
        problems.append(Problem(name, 'expected a list of artworks or {"artworks": [...]}; file ignored'))
        return records, problems
    for i, item in enumerate(items):
        where = f"{prefix}[{i}]"
        if not isinstance(item, dict):
            problems.append(Problem(name, f"{where}: expected an object, got {type(item).__name__}"))
            continue
        ref = next((item[k] for k in item if isinstance(k, str) and k.lower() in FILE_KEYS), None)
        key = normalize_key(ref) if isinstance(ref, str) else ""
        if not key:
            problems.append(Problem(name, f"{where}: no 'file' key naming the image; entry ignored"))
            continue
        if key in records:
            problems.append(Problem(name, f"{where}: '{key}' is listed twice; entry ignored"))
            continue
        records[key] = _record(item, f"{where}", f"{name}:{where}", problems, name)
    return records, problems


def parse_sidecar(path: str, name: str) -> tuple[Record | None, list[Problem]]:
    """A NAME.json sidecar: one JSON object of fields."""
    problems: list[Problem] = []
    text = _read_file(path, name, problems)
    if text is None:
        return None, problems
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(_json_error(name, exc))
        return None, problems
    if not isinstance(doc, dict):
        problems.append(Problem(name, "expected a JSON object of fields (title, artist, ...); ignored"))
        return None, problems
    return _record(doc, "key", name, problems, name), problems


def sidecar_names(image_rel: str) -> tuple[str, str]:
    """The sidecar names an image may have: 'a/b.json' and 'a/b.png.json' for 'a/b.png'."""
    p = PurePosixPath(image_rel)
    return str(p.with_suffix(".json")), f"{image_rel}.json"


class CollectionMetadata:
    """The top-level catalog files of a collection folder, parsed once per scan."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = os.fspath(folder)
        self.problems: list[Problem] = []
        self.csv: dict[str, Record] = {}
        self.json: dict[str, Record] = {}
        self._folded: dict[str, str] = {}
        csv_path = os.path.join(self.folder, CATALOG_CSV)
        json_path = os.path.join(self.folder, CATALOG_JSON)
        if os.path.lexists(csv_path):
            self.csv, found = parse_catalog_csv(csv_path)
            self.problems += found
        if os.path.lexists(json_path):
            self.json, found = parse_catalog_json(json_path)
            self.problems += found
        # Case-insensitive fallback for names typed on case-insensitive systems.
        for key in list(self.csv) + list(self.json):
            self._folded.setdefault(key.casefold(), key)

    def _lookup(self, table: dict[str, Record], rel: str) -> Record | None:
        rec = table.get(rel)
        if rec is None:
            key = self._folded.get(rel.casefold())
            rec = table.get(key) if key else None
        return rec

    def for_image(self, rel: str, sidecar: str | None) -> tuple[ArtworkMetadata, list[Problem]]:
        """Merged metadata for image ``rel``; ``sidecar`` is its NAME.json (relative) or None."""
        problems: list[Problem] = []
        layers = [self._lookup(self.csv, rel), self._lookup(self.json, rel)]
        if sidecar is not None:
            rec, problems = parse_sidecar(os.path.join(self.folder, sidecar), sidecar)
            layers.append(rec)
        fields = {"title": title_from_filename(rel)}
        extra: dict[str, Any] = {}
        sources = []
        for rec in layers:  # lowest precedence first
            if rec is None:
                continue
            fields.update(rec.fields)
            extra.update(rec.extra)
            sources.append(rec.source)
        meta = ArtworkMetadata(
            title=fields.get("title", ""),
            artist=fields.get("artist", ""),
            year=fields.get("year", ""),
            description=fields.get("description", ""),
            style=fields.get("style", ""),
            extra_json=json.dumps(extra, ensure_ascii=False, sort_keys=True, default=str),
            metadata_source="; ".join(reversed(sources)),
        )
        return meta, problems

    def unmatched_rows(self, images: Iterable[str]) -> list[Problem]:
        """Rows of catalog.csv/json that name an image not in the collection."""
        present = set(images)
        folded = {p.casefold() for p in present}
        out = []
        for table, name in ((self.csv, CATALOG_CSV), (self.json, CATALOG_JSON)):
            for key, rec in table.items():
                if key not in present and key.casefold() not in folded:
                    where = rec.source.split(":", 1)[1] if ":" in rec.source else ""
                    where = f"line {where}" if name == CATALOG_CSV else where
                    out.append(Problem(name, f"{where}: names '{key}', which is not in the collection"))
        return out
