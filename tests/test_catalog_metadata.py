"""Parsing curators' metadata files: what is read, and what is reported (file + line/key)."""

import json

from engine.catalog.metadata import (
    parse_catalog_csv,
    parse_catalog_json,
    parse_sidecar,
    title_from_filename,
)


def test_csv_with_bom_semicolons_quotes_and_extra_columns(tmp_path):
    p = tmp_path / "catalog.csv"
    p.write_bytes(
        '\ufeffFile;Title;Year;Room;\na.jpg;"Night; with a semicolon";1888;Hall 2;\nsub\\b.jpg;B;;;\n'.encode(
            "utf-8"
        )
    )
    records, problems = parse_catalog_csv(str(p))
    assert problems == []
    assert records["a.jpg"].fields == {"title": "Night; with a semicolon", "year": "1888"}
    assert records["a.jpg"].extra == {"Room": "Hall 2"}
    assert records["a.jpg"].source == "catalog.csv:2"
    assert records["sub/b.jpg"].fields == {"title": "B"}  # Windows separators accepted


def test_csv_duplicates_empty_file_cells_and_long_rows_are_reported(tmp_path):
    p = tmp_path / "catalog.csv"
    p.write_text("file,title\na.jpg,First\n,No file\na.jpg,Again\nb.jpg,B,surplus\n")
    records, problems = parse_catalog_csv(str(p))
    reasons = [pr.reason for pr in problems]
    assert records["a.jpg"].fields["title"] == "First" and "b.jpg" in records
    assert any(r.startswith("line 3: the 'file' cell is empty") for r in reasons)
    assert any(r.startswith("line 4: 'a.jpg' is already on line 2") for r in reasons)
    assert any(r.startswith("line 5: 3 cells but the header has 2") for r in reasons)
    assert all(pr.path == "catalog.csv" for pr in problems)


def test_json_entries_with_wrong_types_are_reported_by_key(tmp_path):
    p = tmp_path / "catalog.json"
    p.write_text(
        json.dumps(
            [
                {"file": "a.jpg", "title": ["not", "text"], "year": 1890, "artist": "Someone"},
                "just a string",
                {"title": "no file key"},
            ]
        )
    )
    records, problems = parse_catalog_json(str(p))
    assert records["a.jpg"].fields == {"year": "1890", "artist": "Someone"}
    reasons = [pr.reason for pr in problems]
    assert "[0] 'title': expected text, got list" in reasons
    assert "[1]: expected an object, got str" in reasons
    assert "[2]: no 'file' key naming the image; entry ignored" in reasons


def test_sidecar_that_is_not_an_object_is_reported(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('["a list"]')
    record, problems = parse_sidecar(str(p), "a.json")
    assert record is None and "expected a JSON object" in problems[0].reason


def test_latin1_bytes_fall_back_and_name_the_line(tmp_path):
    p = tmp_path / "catalog.csv"
    p.write_bytes(b"file,title\na.jpg,Plain\nb.jpg,Caf\xe9 \x81\n")  # \x81 is not cp1252 either
    records, problems = parse_catalog_csv(str(p))
    assert records["b.jpg"].fields["title"] == "Café \x81"
    assert "line 3: not UTF-8 text; read as LATIN-1" in problems[0].reason


def test_titles_from_file_names():
    assert title_from_filename("room/the-night_cafe.png") == "The Night Cafe"
    assert title_from_filename("IMG_0042.JPG") == "IMG 0042"
    # A bare number is no title (and "11" in a serif face reads as the Roman "II").
    assert title_from_filename("room/11.jpg") == "Untitled (11)"
    assert title_from_filename("2024-03-07.png") == "Untitled (2024-03-07)"
