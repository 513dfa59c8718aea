"""Keeping the catalog in step with a collection folder.

A scan lists the folder, skips every file whose (size, mtime, inode) is what the catalog last
saw, reads the rest in a thread pool (hash, header check, reduced-size decode, thumbnail,
descriptor) and writes the results in batches, each batch one transaction. Identity is the
content hash: a file that moves keeps its row (and so its clips), a file replaced in place gets
a new hash on the same row, and a file that disappears becomes "missing" (never deleted, so
its clips are found again when it comes back). The collection folder is only ever read.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from sqlalchemy import select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from engine.config import CatalogConfig
from engine.store import Artwork, ArtworkSource, ArtworkStatus, Database
from engine.store.models import utcnow
from engine.store.problems import record_problems

from .images import (
    DESCRIPTOR_KIND,
    ImageError,
    decode_rgb,
    image_descriptor,
    make_thumbnail,
    open_checked,
    read_image_bytes,
)
from .metadata import ArtworkMetadata, CollectionMetadata, Problem, sidecar_names
from .walk import FoundFile, Listing, display_path, walk_collection

log = logging.getLogger(__name__)

SOURCE = ArtworkSource.COLLECTION
BATCH_SIZE = 64
# A file that fails to decode and was written less than this long ago (or 3 x settle_seconds)
# is taken to be still arriving: it is read again later instead of being marked invalid.
RECENT_SECONDS = 5.0
# ``progress(done, total)``: files read so far out of the files that need reading.
Progress = Callable[[int, int], None]

_META_COLUMNS = ("title", "artist", "year", "description", "style", "extra_json", "metadata_source")
_ROW_COLUMNS = (
    "id",
    "path",
    "image_hash",
    "status",
    "reason",
    "file_size",
    "file_mtime_ns",
    "file_inode",
    *_META_COLUMNS,
)


class ScanError(RuntimeError):
    """The collection folder cannot be scanned at all (it does not exist, is not a folder)."""


@dataclass
class ScanSummary:
    """What a scan did. Counts are of artworks; ``invalid`` is how many are invalid now."""

    folder: str = ""
    added: int = 0
    updated: int = 0
    renamed: int = 0
    missing: int = 0
    invalid: int = 0
    unchanged: int = 0
    # (path, reason) of every invalid artwork in the scanned part of the collection.
    invalid_items: list[tuple[str, str]] = field(default_factory=list)
    # (file, reason): metadata files that could not be used, rows naming no image, folders
    # that vanished or could not be read, symbolic link loops.
    problems: list[tuple[str, str]] = field(default_factory=list)
    # The problems no scan had found before (the watcher logs only these; all are stored
    # for the curator panel, engine/store/problems.py).
    new_problems: list[tuple[str, str]] = field(default_factory=list)
    # Files that changed while being read (still being copied): left for the next scan.
    growing: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.renamed or self.missing)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["invalid_items"] = [{"path": p, "reason": r} for p, r in self.invalid_items]
        d["problems"] = [{"file": p, "reason": r} for p, r in self.problems]
        return d


@dataclass
class _Read:
    """The outcome of reading one file (in a worker thread)."""

    found: FoundFile
    status: ArtworkStatus = ArtworkStatus.READY
    reason: str = ""
    image_hash: str | None = None
    width: int | None = None
    height: int | None = None
    thumbnail: bytes | None = None
    embedding: bytes | None = None
    gone: bool = False  # the file vanished before it could be read
    growing: bool = False  # the file changed while it was read


def read_image_file(found: FoundFile, config: CatalogConfig) -> _Read:
    """Hash, check and decode one file; never raises for a bad file."""
    out = _Read(found)
    if found.refused:
        out.status, out.reason = ArtworkStatus.INVALID, found.refused
        return out
    try:
        data, out.image_hash = read_image_bytes(found.abspath)
        with open_checked(
            data if data is not None else found.abspath,
            name=found.rel,
            max_pixels=config.max_image_pixels,
        ) as im:
            out.width, out.height = _display_size(im)
            rgb = decode_rgb(im, name=found.rel, max_side=config.thumbnail_size)
        out.thumbnail = make_thumbnail(rgb, config.thumbnail_size)
        out.embedding = image_descriptor(rgb).tobytes()
    except ImageError as exc:
        out.status, out.reason = ArtworkStatus.INVALID, exc.problem
        if "decompression bomb" not in exc.problem and _recently_written(found, config):
            out.growing = True  # most likely still being copied in: read it again later
            return out
    except FileNotFoundError:
        out.gone = True
        return out
    except PermissionError:
        out.status, out.reason = ArtworkStatus.INVALID, "cannot be read (permission denied)"
    except OSError as exc:
        out.status, out.reason = ArtworkStatus.INVALID, f"cannot be read ({exc.strerror or exc})"
    except Exception as exc:  # a malformed file can upset a decoder in unforeseen ways
        log.exception("%s: unexpected error while reading", found.rel)
        out.status = ArtworkStatus.INVALID
        out.reason = f"the image cannot be decoded ({type(exc).__name__}: {exc})"
    out.growing = _changed_since_listed(found)
    return out


def _display_size(im) -> tuple[int, int]:
    width, height = im.size
    try:
        if im.getexif().get(0x0112) in (5, 6, 7, 8):  # rotated a quarter turn
            return height, width
    except Exception:  # a broken EXIF block only loses the rotation, as in the decoder
        pass
    return width, height


def _recently_written(found: FoundFile, config: CatalogConfig) -> bool:
    """Modified so recently that a copy may still be under way (or stalled for a moment)."""
    grace_ns = max(RECENT_SECONDS, 3 * config.settle_seconds) * 1e9
    # A modification time in the future (a camera or share with a wrong clock) is not "recent":
    # else a broken file with one would be "still being copied" forever, logged at every scan.
    return abs(time.time_ns() - found.mtime_ns) < grace_ns


def _changed_since_listed(found: FoundFile) -> bool:
    try:
        st = os.stat(found.abspath)
    except OSError:
        return True
    return (st.st_size, st.st_mtime_ns) != (found.size, found.mtime_ns)


def scan_collection(
    db: Database,
    folder: str | os.PathLike,
    config: CatalogConfig,
    progress: Progress | None = None,
    *,
    paths: list[str] | None = None,
    force: bool = False,
    workers: int | None = None,
) -> ScanSummary:
    """Bring the catalog in step with ``folder``; returns what changed.

    ``paths`` limits the scan to these relative paths (files or folders), as the watcher
    does; ``force`` re-reads every file even when it looks unchanged.
    """
    return _Scan(db, folder, config, progress, paths, force, workers).run()


class _Scan:
    def __init__(self, db, folder, config, progress, paths, force, workers):
        self.db = db
        self.root = os.path.abspath(os.fspath(folder))
        self.config = config
        self.progress = progress
        self.scope = None if paths is None else sorted({p.strip("/") for p in paths if p.strip("/")})
        # The scope as stored paths (non-UTF-8 names are stored with \xNN escapes).
        self.scope_shown = None if self.scope is None else [display_path(p) for p in self.scope]
        self.force = force
        self.workers = workers or _default_workers()
        self.summary = ScanSummary(folder=self.root)
        self.rows: dict[str, dict] = {}  # path -> row columns
        self.claimed: set[int] = set()  # row ids matched to a file in this scan
        self.final: dict[str, tuple[ArtworkStatus, str]] = {}  # path -> (status, reason) after the scan
        self.by_hash: dict[str, list[dict]] = {}  # image hash -> rows (for renames)
        self.listed: set[str] = set()  # relative paths of the images found
        self.problems: list[Problem] = []

    # --- overview -----------------------------------------------------------------------

    def run(self) -> ScanSummary:
        started = time.monotonic()
        if not os.path.isdir(self.root):
            raise ScanError(f"{self.root}: the collection folder does not exist or is not a folder")
        self._load_rows()
        listing = walk_collection(self.root, self.scope)
        self.listed = set(listing.images)
        self.problems += listing.problems
        meta = CollectionMetadata(self.root)
        self.problems += meta.problems
        metadata = self._metadata_for(listing, meta)
        to_read = self._match_unchanged(listing, metadata)
        self._read_and_store(to_read, metadata)
        self._mark_missing(listing)
        if self.scope is None:
            self.problems += meta.unmatched_rows(listing.images)
            self.problems += _orphan_sidecars(listing)
        self._finish_summary(started)
        if self.scope is None or self.summary.problems:
            # A full scan saw everything: what it did not find again was fixed.
            lasting = [p for p in self.summary.problems if p[0] not in set(self.summary.growing)]
            self.summary.new_problems = record_problems(self.db, lasting, complete=self.scope is None)
        return self.summary

    def _in_scope(self, path: str) -> bool:
        if self.scope is None:
            return True
        return any(path == s or path.startswith(s + "/") for s in self.scope_shown)

    def _load_rows(self) -> None:
        columns = [getattr(Artwork, c) for c in _ROW_COLUMNS]
        with self.db.read() as session:
            result = session.execute(select(*columns).where(Artwork.source == SOURCE))
            self.rows = {r.path: r._asdict() for r in result}
        for row in self.rows.values():
            if row["image_hash"]:
                self.by_hash.setdefault(row["image_hash"], []).append(row)

    def _metadata_for(self, listing: Listing, meta: CollectionMetadata) -> dict[str, ArtworkMetadata]:
        out = {}
        for rel in listing.images:
            sidecar = next((s for s in sidecar_names(rel) if self._has_sidecar(listing, s)), None)
            out[rel], found_problems = meta.for_image(rel, sidecar)
            self.problems += found_problems
        return out

    def _has_sidecar(self, listing: Listing, rel: str) -> bool:
        if self.scope is None or rel in listing.json_files:
            return rel in listing.json_files
        return os.path.isfile(os.path.join(self.root, rel))  # a scoped scan lists no sidecars

    # --- files that need no reading -----------------------------------------------------

    def _match_unchanged(self, listing: Listing, metadata: dict) -> list[FoundFile]:
        """Claim rows of files that did not change or only moved; return the files to read."""
        to_read: list[FoundFile] = []
        updates: list[dict] = []
        for rel, found in listing.images.items():
            row = self.rows.get(rel)
            if row is not None and not self.force and self._unchanged(row, found):
                self.claimed.add(row["id"])
                self.final[rel] = (row["status"], row["reason"])
                change = _meta_changes(row, metadata[rel])
                if change:
                    updates.append({"id": row["id"], **change, "updated_at": utcnow()})
                    self.summary.updated += 1
                else:
                    self.summary.unchanged += 1
            else:
                to_read.append(found)
        to_read = self._match_moved(to_read, metadata, updates)
        if updates:
            self.db.run_write(lambda s: _bulk_update(s, updates))
        return to_read

    @staticmethod
    def _unchanged(row: dict, found: FoundFile) -> bool:
        if row["status"] == ArtworkStatus.MISSING:
            return False
        if row["status"] == ArtworkStatus.INVALID and row["image_hash"] is None and not found.refused:
            return False  # it could not be read at all: try again (permissions may be fixed)
        return (row["file_size"], row["file_mtime_ns"], row["file_inode"]) == found.stat_key

    def _is_gone(self, row: dict) -> bool:
        """True for a row whose file is not where the row says: a candidate for a rename."""
        if row["id"] in self.claimed:
            return False
        path = row["path"]
        return row["status"] == ArtworkStatus.MISSING or (self._in_scope(path) and path not in self.listed)

    def _match_moved(self, files: list[FoundFile], metadata: dict, updates: list) -> list[FoundFile]:
        """Files at a new path with the same (size, mtime, inode) as a vanished row: moved."""
        by_stat = {
            (r["file_size"], r["file_mtime_ns"], r["file_inode"]): r
            for r in self.rows.values()
            if self._is_gone(r) and r["status"] != ArtworkStatus.MISSING and r["file_inode"] is not None
        }
        rest = []
        for found in files:
            row = by_stat.pop(found.stat_key, None) if found.rel not in self.rows else None
            if row is None or self.force or found.refused:
                rest.append(found)
                continue
            self.claimed.add(row["id"])
            self._move_row(row, found.rel)
            self.final[found.rel] = (row["status"], row["reason"])
            updates.append(
                {
                    "id": row["id"],
                    "path": found.rel,
                    "updated_at": utcnow(),
                    **metadata[found.rel].as_columns(),
                }
            )
            self.summary.renamed += 1
        return rest

    def _move_row(self, row: dict, new_path: str) -> None:
        del self.rows[row["path"]]
        row["path"] = new_path
        self.rows[new_path] = row

    # --- files that must be read --------------------------------------------------------

    def _read_and_store(self, files: list[FoundFile], metadata: dict) -> None:
        total = len(files)
        if self.progress:
            self.progress(0, total)
        batch: list[_Read] = []
        for done, result in enumerate(self._read_all(files), start=1):
            batch.append(result)
            if len(batch) >= BATCH_SIZE:
                self._store(batch, metadata)
                batch = []
            if self.progress:
                self.progress(done, total)
        if batch:
            self._store(batch, metadata)

    def _read_all(self, files: list[FoundFile]) -> Iterator[_Read]:
        """Results as they complete, with a bounded number of files in flight (memory)."""
        if not files:
            return
        pending = iter(files)
        with cf.ThreadPoolExecutor(self.workers, thread_name_prefix="catalog-read") as pool:
            in_flight = set()
            for found in pending:
                in_flight.add(pool.submit(read_image_file, found, self.config))
                if len(in_flight) >= 2 * self.workers:
                    break
            while in_flight:
                done, in_flight = cf.wait(in_flight, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    yield future.result()
                    nxt = next(pending, None)
                    if nxt is not None:
                        in_flight.add(pool.submit(read_image_file, nxt, self.config))

    def _store(self, batch: list[_Read], metadata: dict) -> None:
        """Match a batch of read files to rows and write it in one transaction."""
        inserts, updates = [], []
        now = utcnow()
        for r in batch:
            rel = r.found.rel
            if r.gone:
                continue
            if r.growing:
                self.summary.growing.append(rel)
                if rel in self.rows:
                    self.claimed.add(self.rows[rel]["id"])  # left as it is, not missing
                continue
            values = self._values(r, metadata[rel], now)
            row, kind = self._match(rel, r.image_hash)
            self.final[rel] = (r.status, r.reason)
            if row is None:
                inserts.append({**values, "source": SOURCE, "created_at": now})
                self.summary.added += 1
                continue
            self.claimed.add(row["id"])
            if kind == "renamed":
                self._move_row(row, rel)
                self.summary.renamed += 1
            elif _same_outcome(row, r) and not _meta_changes(row, metadata[rel]):
                self.summary.unchanged += 1  # touched, copied over with the same bytes, ...
            else:
                self.summary.updated += 1
            row.update(status=r.status, reason=r.reason, image_hash=r.image_hash)
            if r.image_hash:
                self.by_hash.setdefault(r.image_hash, []).append(row)
            updates.append({"id": row["id"], **values})

        def write(session: Session) -> None:
            _bulk_update(session, updates)
            if inserts:
                stmt = sqlite_insert(Artwork)
                keep = {c: stmt.excluded[c] for c in inserts[0] if c not in ("created_at", "source")}
                session.execute(stmt.on_conflict_do_update(index_elements=["path"], set_=keep), inserts)

        if inserts or updates:
            self.db.run_write(write)
        if inserts:
            # Learn the new rows' ids, so that a later batch can match a rename to them.
            self._load_new_rows([i["path"] for i in inserts])

    def _load_new_rows(self, paths: list[str]) -> None:
        columns = [getattr(Artwork, c) for c in _ROW_COLUMNS]
        with self.db.read() as session:
            for r in session.execute(select(*columns).where(Artwork.path.in_(paths))):
                row = self.rows[r.path] = r._asdict()
                self.claimed.add(r.id)
                if row["image_hash"]:
                    self.by_hash.setdefault(row["image_hash"], []).append(row)

    def _match(self, rel: str, image_hash: str | None) -> tuple[dict | None, str]:
        """The row a read file belongs to: same path and bytes, else moved, else replaced."""
        row = self.rows.get(rel)
        if row is not None and row["id"] in self.claimed:
            row = None  # (cannot happen for a path listed once; kept for safety)
        if row is not None and image_hash is not None and row["image_hash"] == image_hash:
            return row, "same"
        if row is None and image_hash is not None:
            candidates = self.by_hash.get(image_hash, ())
            moved = next((g for g in candidates if g["image_hash"] == image_hash and self._is_gone(g)), None)
            if moved is not None:
                return moved, "renamed"
        return (row, "replaced") if row is not None else (None, "new")

    def _values(self, r: _Read, meta: ArtworkMetadata, now) -> dict:
        values = {
            "path": r.found.rel,
            "image_hash": r.image_hash,
            "status": r.status,
            "reason": r.reason,
            "width": r.width,
            "height": r.height,
            "file_size": r.found.size,
            "file_mtime_ns": r.found.mtime_ns,
            "file_inode": r.found.inode,
            "thumbnail": r.thumbnail,
            "embedding": r.embedding,
            "embedding_kind": DESCRIPTOR_KIND if r.embedding else "",
            "updated_at": now,
            **meta.as_columns(),
        }
        return values

    # --- files that are gone ------------------------------------------------------------

    def _mark_missing(self, listing: Listing) -> None:
        unlisted = listing.unlisted
        gone = [
            row["id"]
            for path, row in self.rows.items()
            if row["id"] not in self.claimed
            and row["status"] != ArtworkStatus.MISSING
            and self._in_scope(path)
            and not any(path.startswith(u + "/") or path == u or not u for u in unlisted)
            and not (self.scope is not None and os.path.lexists(os.path.join(self.root, path)))
        ]
        if not gone:
            return
        now = utcnow()

        def write(session: Session) -> None:
            for i in range(0, len(gone), 500):
                session.execute(
                    update(Artwork)
                    .where(Artwork.id.in_(gone[i : i + 500]))
                    .values(status=ArtworkStatus.MISSING, updated_at=now)
                )

        self.db.run_write(write)
        self.summary.missing = len(gone)

    def _finish_summary(self, started: float) -> None:
        s = self.summary
        s.invalid_items = sorted(
            (path, reason) for path, (status, reason) in self.final.items() if status == ArtworkStatus.INVALID
        )
        s.invalid = len(s.invalid_items)
        seen = set()
        for p in self.problems:
            if (p.path, p.reason) not in seen:
                seen.add((p.path, p.reason))
                s.problems.append((p.path, p.reason))
        for rel in s.growing:
            s.problems.append(
                (
                    rel,
                    "incomplete or changing right now (still being copied?); "
                    "it will be read again on the next scan",
                )
            )
        s.seconds = time.monotonic() - started
        log.info(
            "%s: %d added, %d updated, %d renamed, %d missing, %d invalid, %d unchanged (%.1f s)",
            s.folder,
            s.added,
            s.updated,
            s.renamed,
            s.missing,
            s.invalid,
            s.unchanged,
            s.seconds,
        )


def _same_outcome(row: dict, r: _Read) -> bool:
    return (row["status"], row["reason"], row["image_hash"]) == (r.status, r.reason, r.image_hash)


def _meta_changes(row: dict, meta: ArtworkMetadata) -> dict:
    new = meta.as_columns()
    return {k: v for k, v in new.items() if row.get(k) != v}


def _bulk_update(session: Session, updates: list[dict]) -> None:
    """UPDATE by primary key, grouped by the set of columns (one executemany per group)."""
    groups: dict[tuple, list[dict]] = {}
    for u in updates:
        groups.setdefault(tuple(sorted(u)), []).append(u)
    for rows in groups.values():
        session.execute(update(Artwork), rows)


def _orphan_sidecars(listing: Listing) -> list[Problem]:
    claimed: set[str] = set()
    for rel in listing.images:
        claimed.update(sidecar_names(rel))
    return [
        Problem(j, "a metadata sidecar with no image of the same name next to it; ignored")
        for j in sorted(listing.json_files - claimed)
    ]


def _default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def list_artworks(db: Database, *, include_missing: bool = True) -> list[dict]:
    """Collection artworks as plain dicts (no thumbnails), ordered by path."""
    columns = [
        Artwork.id,
        Artwork.path,
        Artwork.title,
        Artwork.artist,
        Artwork.year,
        Artwork.style,
        Artwork.description,
        Artwork.status,
        Artwork.reason,
        Artwork.image_hash,
        Artwork.width,
        Artwork.height,
        Artwork.metadata_source,
        Artwork.extra_json,
    ]
    with db.read() as session:
        stmt = select(*columns).where(Artwork.source == SOURCE).order_by(Artwork.path)
        if not include_missing:
            stmt = stmt.where(Artwork.status != ArtworkStatus.MISSING)
        out = []
        for r in session.execute(stmt):
            d = r._asdict()
            try:
                d["extra"] = json.loads(d.pop("extra_json") or "{}")
            except ValueError:
                d["extra"] = {}
            out.append(d)
        return out


__all__ = ["ScanError", "ScanSummary", "list_artworks", "read_image_file", "scan_collection"]
