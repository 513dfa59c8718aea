"""Curators never lose a choice; problems show where the curator looks (Qt offscreen)."""

from __future__ import annotations

from types import SimpleNamespace

from kiosk_support import ToneEngine, artworks
from PyQt6.QtCore import Qt

from engine.store import JobKind
from engine.store.clips import ClipStore
from engine.store.jobs import JobQueue
from installation.kiosk.curator_words import describe_clip, differences


def _clip(id_, seed, caption, engine="default", chosen=False):
    return SimpleNamespace(id=id_, seed=seed, caption=caption, engine=engine, chosen=chosen,
                           score=None, duration=30.0)  # fmt: skip


def test_candidates_say_what_differs_from_the_chosen_clip():
    chosen = _clip(1, 5, "Gentle and warm: soft brass, an oboe and a tuba\n"
                         "unhurried, warm soft brass and an oboe over a low tuba in A Mixolydian", chosen=True)  # fmt: skip
    other = _clip(2, 9, "Flowing and warm: voices, a celesta and a plucked bass\n"
                        "flowing, warm voices and a celesta over a low plucked bass in E Dorian")  # fmt: skip
    assert differences(other, chosen) == [
        "seed",
        "key (A Mixolydian → E Dorian)",
        "tempo (unhurried → flowing)",
        "instruments",
    ]
    text = describe_clip(other, chosen)
    assert text.startswith("Candidate · clip 2 · default · seed 9")
    assert "Flowing and warm: voices" in text and "in E Dorian" in text
    assert text.endswith(
        "Differs in: seed, key (A Mixolydian → E Dorian), tempo (unhurried → flowing), instruments"
    )
    assert describe_clip(chosen, chosen).startswith("✓ Chosen: visitors hear this")
    tone = _clip(3, 9, "A tone chord on 131 Hz", engine="tone")
    assert differences(tone, chosen) == ["engine (default → tone)", "seed", "the music's description"]


def _put(store, aid, h, seed, chosen=None):
    clip = ToneEngine().generate(None, 5.0, seed)
    return ClipStore(store).put(image_hash=h, artwork_id=aid, engine=ToneEngine(), clip=clip, chosen=chosen)


def test_regenerate_keeps_the_chosen_clip_and_one_undo_takes_a_choice_back(qtbot, kiosk, store):
    aid, h = artworks(store)["church-at-auvers.png"]
    first = _put(store, aid, h, seed=1)
    kiosk.refresh_from_store(wait=True)
    kiosk.open_pin_pad()
    assert kiosk.pin_pad.enter("2468")
    panel = kiosk.curator
    panel.table.selectRow(next(i for i, e in enumerate(panel.table_model.entries) if e.id == aid))
    assert not panel.choose_button.isEnabled()  # the only clip is the chosen one

    qtbot.mouseClick(panel.regenerate_button, Qt.MouseButton.LeftButton)
    job = JobQueue(store).latest_for(aid)
    assert job is not None and job.kind == JobKind.REGENERATE
    assert "keeps playing" in panel.clip_message.text()
    assert kiosk.services.own_clip(aid).clip.id == first  # nothing removed, nothing replaced

    new = _put(store, aid, h, seed=2, chosen=False)  # the engine delivers a candidate
    kiosk.refresh_from_store(wait=True)
    assert panel.clip_list.count() == 2
    rows = [panel.clip_list.item(i).data(Qt.ItemDataRole.UserRole).id for i in range(2)]
    assert rows[0] == first  # the chosen clip first
    panel.clip_list.setCurrentRow(rows.index(new))
    assert "Differs in: seed" in panel.clip_list.currentItem().text()
    assert panel.choose_button.isEnabled() and not panel.undo_button.isEnabled()

    qtbot.mouseClick(panel.choose_button, Qt.MouseButton.LeftButton)
    assert kiosk.services.own_clip(aid).clip.id == new
    assert panel.undo_button.isEnabled() and f"Undo goes back to clip {first}" in panel.clip_message.text()
    qtbot.mouseClick(panel.undo_button, Qt.MouseButton.LeftButton)
    assert kiosk.services.own_clip(aid).clip.id == first
    assert not panel.undo_button.isEnabled()  # one undo
    assert {c.id for c in kiosk.services.candidates(aid)} == {first, new}  # nothing lost


def test_metadata_problems_low_resolution_and_plain_reasons_reach_the_panel(qtbot, kiosk, store, collection):
    from catalog_files import age, write_truncated_jpeg
    from PIL import Image

    from engine.catalog.scanner import scan_collection
    from engine.config import default_config

    (collection / "catalog.csv").write_text("file,title\nghost.jpg,Gone\n")
    Image.new("RGB", (322, 500), (120, 90, 60)).save(collection / "small-scan.png")
    write_truncated_jpeg(collection / "broken.jpg")
    age(collection)  # not just copied in: the broken file is read as final
    scan_collection(store, collection, default_config().catalog)
    kiosk.refresh_from_store(wait=True)
    kiosk.open_pin_pad()
    assert kiosk.pin_pad.enter("2468")
    panel = kiosk.curator
    # The CSV's row naming no image: with its file and line, where the curator looks.
    assert (
        "catalog.csv, line 2: names 'ghost.jpg', which is not in the collection" in panel.problems_text.text()
    )
    entries = panel.table_model.entries
    statuses = [panel.table_model.data(panel.table_model.index(i, 2)) for i in range(len(entries))]
    broken = next(i for i, e in enumerate(entries) if e.path == "broken.jpg")
    small = next(i for i, e in enumerate(entries) if e.path == "small-scan.png")
    assert broken == 0  # problems first
    assert "copy it into the folder again" in statuses[broken]  # plain words...
    panel.table.selectRow(broken)
    assert "Technical detail:" in panel.selected_status.text()  # ...the detail on demand
    assert "Low resolution: shown at 1.9×" in statuses[small]
    panel.table.selectRow(small)
    assert "shown at 1.9× its size; a larger scan would look sharper" in panel.selected_status.text()
    # (The demo paintings are 500 px high too: a curator learns they would all look soft.)
    # The status column is the widest, and the first row is in view.
    widths = [panel.table.columnWidth(c) for c in range(3)]
    assert panel.table.horizontalHeader().sectionSize(2) >= max(widths[:2])
    assert panel.table.verticalScrollBar().value() == 0
