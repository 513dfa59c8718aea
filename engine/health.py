"""The health report: what ``art2mus status --json`` prints and ``GET /health`` serves.

It is read from the real state, never from what a process believes about itself: the
database (opened read-only, so a report never changes or creates anything, and works on a
read-only file), the services' beacons beside it (``engine/beacons.py``: who runs, since when,
the kiosk's audio), the disk, and the configuration. Each part is gathered on its own: a
damaged database still gives a report that says so in ``last_errors``.

Schema (version 1)::

    {"schema": 1, "time": ISO-8601 UTC, "ok": bool, "database": path,
     "engine": {"name", "reason", "model_version", "running", "started_at"},
     "clips": {"ready", "pending", "failed", "stored", "bytes", "in_database"},
     "artworks": {"ready", "invalid", "missing"},
     "audio": {"running", "healthy", "device", "underruns", "restarts", "last_error"},
     "disk": {"path", "free_bytes", "total_bytes"},
     "security": {"default_pin": bool},
     "warnings": [str], "last_errors": [{"at", "source", "message"}],
     "uptime_s": the engine service's, or null,
     "services": [{"service", "host", "pid", "alive", "started_at", "updated_at", "uptime_s"}]}

``clips.ready`` counts ready artworks with at least one clip (music to play), ``pending`` the
jobs queued or running, ``failed`` the jobs that failed for good; ``stored`` is all clips,
``bytes`` their audio (files in ``DATABASE.clips/``, engine/store/clip_files.py), and
``in_database`` the clips whose audio is still a blob waiting to be moved into a file.
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from .beacons import Beacon, read_beacons
from .config import Config, uses_default_pin
from .store.models import Artwork, ArtworkStatus, Clip, Job, JobStatus, ServiceStatus
from .store.status import ENGINE_SERVICE

SCHEMA_VERSION = 1
# Failed jobs listed in last_errors (newest first).
LAST_ERRORS = 10


class ServiceName(StrEnum):
    """The ``service`` of a beacon."""

    ENGINE = ENGINE_SERVICE
    KIOSK = "kiosk"


DEFAULT_PIN_WARNING = (
    "the curator PIN is the shipped default: anyone who knows it can leave the kiosk; "
    "set your own with `art2mus config hash-pin` (kiosk.pin_hash)"
)


def store_faults(database: Path) -> list[dict[str, Any]]:
    """The store's active fault conditions (disk full, database busy or read-only, damaged
    file set aside, ...; engine/store/conditions.py) as ``{"at", "source": "store", "message"}``.

    Read straight from the ``conditions`` table, read-only, like the rest of the report; a
    database older than that table has none."""
    if not database.is_file():
        return []
    try:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return []  # the report says elsewhere that the database cannot be opened
    try:
        rows = conn.execute(
            "SELECT name, message, started_at, count FROM conditions ORDER BY started_at"
        ).fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()
    return [
        {
            "at": _iso_text(started_at),
            "source": "store",
            "message": f"{name}: {message}" + (f" (met {count} times)" if count > 1 else ""),
        }
        for name, message, started_at, count in rows
    ]


# Replaceable (tests, or the store once it keeps its conditions): database -> faults.
fault_sources: list[Callable[[Path], list[dict[str, Any]]]] = [store_faults]


def health_report(config: Config, database: Path | None = None) -> dict[str, Any]:
    """The health report for ``database`` (default: ``store.database``) under ``config``."""
    database = database if database is not None else config.store.database
    errors: list[dict[str, Any]] = []
    warnings: list[str] = []
    report: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "time": _iso(datetime.now(UTC)),
        "ok": True,
        "database": str(database),
    }
    beacons = read_beacons(database)
    report.update(_from_database(database, errors))
    engines = [b for b in beacons if b.service == ServiceName.ENGINE and b.alive]
    report["engine"]["running"] = bool(engines)
    if len(engines) > 1:
        warnings.append(
            f"{len(engines)} engine services run on this database: "
            + ", ".join(f"{b.host}:{b.pid}" for b in engines)
        )
    report["audio"] = _audio(beacons, errors)
    report["disk"] = _disk(database)
    default_pin = uses_default_pin(config)
    report["security"] = {"default_pin": default_pin}
    if default_pin:
        warnings.append(DEFAULT_PIN_WARNING)
    for source in fault_sources:
        try:
            errors.extend(source(database))
        except Exception as exc:  # a broken hook must not take the report down
            errors.append(_error("health", f"fault source failed: {exc}"))
    errors.sort(key=lambda e: str(e.get("at") or ""), reverse=True)
    report["warnings"] = warnings
    report["last_errors"] = errors[:LAST_ERRORS]
    report["uptime_s"] = round(time.time() - engines[0].started_at, 1) if engines else None
    report["services"] = [b.as_json() for b in beacons]
    report["ok"] = bool(engines) and not any(e["source"] in ("store", "database") for e in errors)
    return report


def _from_database(database: Path, errors: list[dict[str, Any]]) -> dict[str, Any]:
    engine: dict[str, Any] = {"name": None, "reason": "", "model_version": None, "started_at": None}
    clips: dict[str, int | None] = dict.fromkeys(
        ("ready", "pending", "failed", "stored", "bytes", "in_database")
    )
    artworks: dict[str, int | None] = {s.value: None for s in ArtworkStatus}
    out = {"engine": engine, "clips": clips, "artworks": artworks}
    if not database.is_file():
        errors.append(_error("database", f"{database}: no database yet (no service has started)"))
        return out
    try:
        # Read-only and never created: a report changes nothing, works on a read-only file.
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        errors.append(_error("database", f"{database}: cannot open: {exc}"))
        return out
    try:
        _read(conn, engine, clips, artworks, errors)
    except sqlite3.Error as exc:
        errors.append(_error("database", f"{database}: cannot read: {exc}"))
    finally:
        conn.close()
    return out


def _read(
    conn: sqlite3.Connection,
    engine: dict[str, Any],
    clips: dict[str, int | None],
    artworks: dict[str, int | None],
    errors: list[dict[str, Any]],
) -> None:
    a, c, j, s = Artwork.__tablename__, Clip.__tablename__, Job.__tablename__, ServiceStatus.__tablename__
    row = conn.execute(
        f"SELECT engine, reason, model_version, started_at FROM {s} WHERE service = ?", (ENGINE_SERVICE,)
    ).fetchone()
    if row is not None:
        engine.update(name=row[0], reason=row[1], model_version=row[2], started_at=_iso_text(row[3]))
    counts = dict(conn.execute(f"SELECT status, count(*) FROM {a} GROUP BY status").fetchall())
    for status in ArtworkStatus:
        artworks[status.value] = int(counts.get(status.value, 0))
    jobs = dict(conn.execute(f"SELECT status, count(*) FROM {j} GROUP BY status").fetchall())
    clips["pending"] = int(jobs.get(JobStatus.QUEUED.value, 0)) + int(jobs.get(JobStatus.RUNNING.value, 0))
    clips["failed"] = int(jobs.get(JobStatus.FAILED.value, 0))
    clips["stored"] = int(conn.execute(f"SELECT count(*) FROM {c}").fetchone()[0])
    try:
        size, blobs = conn.execute(
            f"SELECT sum(coalesce(audio_size, length(audio))), sum(audio_sha256 IS NULL) FROM {c}"
        ).fetchone()
    except sqlite3.OperationalError:  # a store before schema 7 (read-only: not upgraded)
        size, blobs = conn.execute(f"SELECT sum(length(audio)), count(*) FROM {c}").fetchone()
    clips["bytes"], clips["in_database"] = int(size or 0), int(blobs or 0)
    clips["ready"] = int(
        conn.execute(
            f"SELECT count(*) FROM {a} WHERE status = ? AND image_hash IS NOT NULL "
            f"AND EXISTS (SELECT 1 FROM {c} WHERE {c}.image_hash = {a}.image_hash)",
            (ArtworkStatus.READY.value,),
        ).fetchone()[0]
    )
    failed = conn.execute(
        f"SELECT coalesce({j}.finished_at, {j}.created_at), {a}.path, {j}.error FROM {j} "
        f"LEFT JOIN {a} ON {a}.id = {j}.artwork_id WHERE {j}.status = ? "
        f"ORDER BY {j}.finished_at DESC, {j}.id DESC LIMIT ?",
        (JobStatus.FAILED.value, LAST_ERRORS),
    ).fetchall()
    for at, path, error in failed:
        errors.append(
            {"at": _iso_text(at), "source": "job", "message": f"{path or '?'}: {error or 'failed'}"}
        )


def _audio(beacons: list[Beacon], errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The kiosk's audio, from its beacon (the player lives in the kiosk process)."""
    kiosk = next((b for b in beacons if b.service == ServiceName.KIOSK and b.alive), None)
    empty = {"running": False, "healthy": None, "device": None, "underruns": None, "restarts": None}
    if kiosk is None:
        return {**empty, "last_error": "no kiosk running on this database"}
    audio = kiosk.extra.get("audio") or {}
    if not audio.get("running"):
        return {**empty, "last_error": audio.get("last_error") or "the kiosk's player has not started"}
    out = {
        "running": True,
        "healthy": audio.get("healthy"),
        "device": audio.get("device"),
        "underruns": audio.get("underruns"),
        "restarts": audio.get("restarts"),
        "last_error": audio.get("last_error"),
    }
    if out["last_error"]:
        errors.append(_error("audio", str(out["last_error"]), kiosk.updated_at))
    return out


def _disk(database: Path) -> dict[str, Any]:
    folder = next((p for p in (database.parent, *database.parents) if p.exists()), Path("/"))
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return {"path": str(folder), "free_bytes": None, "total_bytes": None}
    return {"path": str(folder), "free_bytes": usage.free, "total_bytes": usage.total}


def _error(source: str, message: str, at: float | None = None) -> dict[str, Any]:
    when = datetime.fromtimestamp(at, UTC) if at is not None else datetime.now(UTC)
    return {"at": _iso(when), "source": source, "message": message}


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_text(stored: Any) -> str | None:
    """The store keeps naive UTC datetimes as text ('2026-11-29 15:03:19.975470')."""
    if stored is None:
        return None
    try:
        return _iso(datetime.fromisoformat(str(stored)).replace(tzinfo=UTC))
    except ValueError:
        return str(stored)


def summary_lines(report: dict[str, Any]) -> list[str]:
    """The report for a person (``art2mus status``)."""
    e, c, a, au, d = (report[k] for k in ("engine", "clips", "artworks", "audio", "disk"))
    lines = [f"database  {report['database']}"]
    running = "running" if e.get("running") else "NOT RUNNING"
    up = f", up {_duration(report['uptime_s'])}" if report.get("uptime_s") is not None else ""
    lines.append(f"engine    {e.get('name') or '?'} ({running}{up}): {e.get('reason') or 'no word yet'}")
    lines.append(f"clips     {c['ready']} artworks with music, {c['pending']} pending, {c['failed']} failed")
    if c.get("bytes") is not None:
        waiting = f", {c['in_database']} still in the database" if c.get("in_database") else ""
        lines.append(f"          {c['stored']} clips stored, {c['bytes'] / 1e6:.1f} MB of audio{waiting}")
    lines.append(f"artworks  {a['ready']} ready, {a['invalid']} invalid, {a['missing']} missing")
    if au.get("running"):
        state = "ok" if au.get("healthy") else "RECOVERING"
        lines.append(
            f"audio     {state} on {au.get('device')!r}: {au.get('underruns')} underruns, "
            f"{au.get('restarts')} restarts"
        )
    else:
        lines.append(f"audio     not playing: {au.get('last_error')}")
    free = d.get("free_bytes")
    lines.append(
        f"disk      {free / 2**30:.1f} GiB free on {d['path']}" if free is not None else "disk      ?"
    )
    for s in report["services"]:
        state = f"up {_duration(s['uptime_s'])}" if s["alive"] else f"gone since {s['updated_at']}"
        lines.append(f"service   {s['service']} {s['host']}:{s['pid']} {state}")
    for w in report["warnings"]:
        lines.append(f"WARNING   {w}")
    for err in report["last_errors"]:
        lines.append(f"error     {err['at']} [{err['source']}] {err['message']}")
    return lines


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(seconds)
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{d}d {h}h {m}m" if d else f"{h}h {m}m {s}s" if h else f"{m}m {s}s"
