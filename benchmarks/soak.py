"""Soak: the engine service, the kiosk and a JACK server run together for a while.

Real processes on one database: ``art2mus engine serve`` and ``art2mus kiosk`` (Qt offscreen,
normal mode, its player on a private JACK dummy server started here and stopped by its
process id) over a copy of the demo collection. Meanwhile, in this process:

- a simulated visitor touches an artwork every few seconds. The kiosk offers no hook from
  outside its process, so the touch is made through the same services the kiosk's window
  calls (``KioskServices.clip_choice`` and the clip's decode, then a ``visitor`` job as the
  kiosk's backend queues it when the artwork has no clip of its own) on the shared database.
  The kiosk process itself plays its ambient music on JACK, so its player runs the whole
  time; it is not made to crossfade by these touches (that needs a click in its window:
  ``benchmarks/kiosk_touch.py`` measures that in-process);
- a simulated curator adds new images, renames and deletes them in the collection folder.

Printed: each process's resident memory over time and its growth after warm-up, the kiosk's
audio underruns and restarts (from its beacon, as ``art2mus status`` reads them), touches,
clips made, the curator's changes, every WARNING/ERROR line the two services logged, and
whether every artwork has a clip at the end and the curator's files are as the curator left
them. ``tests/test_soak.py`` runs a one-minute form of it.

    PYTHONPATH=. python benchmarks/soak.py --minutes 30

Figures from a shared, busy machine are noisy (memory less so than timing).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "content" / "demo"
# A line the services logged at WARNING or above (engine/log_format.py's PLAIN_FORMAT).
PROBLEM = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b")
ERROR = re.compile(r"\b(ERROR|CRITICAL)\b")


@dataclass
class SoakResult:
    seconds: float
    # (seconds since start, {process: RSS in MB}) every sample
    memory: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    underruns: int | None = None
    # (seconds since start, the kiosk's underruns so far) every sample
    underrun_series: list[tuple[float, int]] = field(default_factory=list)
    restarts: int | None = None
    touches: int = 0
    visitor_jobs: int = 0
    clips: int = 0
    added: int = 0
    renamed: int = 0
    deleted: int = 0
    artworks: int = 0
    without_clip: list[str] = field(default_factory=list)
    changed_files: list[str] = field(default_factory=list)  # curator files not as left
    problems: dict[str, list[str]] = field(default_factory=dict)  # log name -> lines
    tracebacks: dict[str, int] = field(default_factory=dict)
    exit_codes: dict[str, int | None] = field(default_factory=dict)

    def growth_mb(self, name: str) -> float:
        """RSS at the end minus RSS after warm-up (the first third: imports, caches, first
        clips), so that a leak shows and start-up does not."""
        series = [(t, m[name]) for t, m in self.memory if name in m]
        if len(series) < 2:
            return 0.0
        warm = [v for t, v in series if t >= self.seconds / 3] or [series[-1][1]]
        return series[-1][1] - warm[0]

    def underruns_after_warmup(self) -> int | None:
        """Underruns after the first third: opening the stream while the kiosk starts (Qt,
        thumbnails, first clips decoded) may cost one or two, which a leak or a stall
        during the run must not hide behind."""
        if self.underruns is None:
            return None
        warm = [n for t, n in self.underrun_series if t >= self.seconds / 3]
        return self.underruns - (warm[0] if warm else self.underruns)

    def errors(self, name: str) -> list[str]:
        return [line for line in self.problems.get(name, []) if ERROR.search(line)]


def rss_mb(pid: int) -> float | None:
    """Resident memory of ``pid`` and its children (the engine may spawn workers)."""
    total = 0.0
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    found = False
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
                    found = True
        except OSError:
            continue
    return total if found else None


def file_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def start_jack(name: str, log_path: Path) -> subprocess.Popen:
    """A private jackd on the dummy driver (real time, no sound card, no privileges)."""
    if shutil.which("jackd") is None:
        raise RuntimeError("jackd is needed (apt install jackd2)")
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            ["jackd", "-n", name, "--no-realtime", "-d", "dummy", "-r", "48000", "-p", "1024"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    for _ in range(200):
        if proc.poll() is not None:
            raise RuntimeError(f"jackd exited with {proc.returncode}; see {log_path}")
        if subprocess.run(["jack_lsp", "-s", name], capture_output=True, env=env).returncode == 0:
            return proc
        time.sleep(0.1)
    stop(proc, 5)
    raise RuntimeError(f"jackd {name} did not come up; see {log_path}")


def stop(proc: subprocess.Popen, timeout: float) -> int | None:
    """SIGTERM by process id, then SIGKILL if it does not end in time."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    return proc.returncode


def write_config(workdir: Path, collection: Path, database: Path, clip_seconds: float) -> Path:
    config = workdir / "art2mus.toml"
    config.write_text(
        f"""[collection]
path = "{collection}"
[store]
database = "{database}"
# A tmp folder on a busy build machine may have little free space; the soak is not about that.
min_free_megabytes = 1
[engine]
name = "default"
# Short clips, so that a short soak still makes many (the default engine needs seconds each).
duration = {clip_seconds}
[audio]
device = ""
[kiosk]
idle_seconds = 20.0
"""
    )
    return config


class Curator:
    """Adds new images, renames and deletes them; never touches the demo's own files, and
    keeps what it left in the folder (name -> sha256) to compare at the end."""

    def __init__(self, collection: Path, rng: random.Random):
        self.collection = collection
        self.rng = rng
        self.expected = file_hashes(collection)
        self.mine: list[Path] = []
        self.added = self.renamed = self.deleted = 0
        self.serial = 0

    def act(self) -> None:
        action = self.rng.choice(["add", "add", "rename", "delete"]) if self.mine else "add"
        if action == "add":
            from PIL import Image

            self.serial += 1
            # A new picture (new content: the engine must compose its music), written under a
            # temporary name and renamed in, as a careful copy does; the watcher waits anyway.
            pixels = np.random.default_rng(self.rng.randrange(1 << 30)).integers(0, 255, (48, 64, 3))
            image = Image.fromarray(np.kron(pixels, np.ones((8, 8, 1))).astype(np.uint8))
            path = self.collection / f"visitor-gift-{self.serial}.png"
            tmp = self.collection / f".{path.name}.part"
            image.save(tmp, format="PNG")
            os.replace(tmp, path)
            self.mine.append(path)
            self.expected[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
            self.added += 1
        elif action == "rename":
            old = self.rng.choice(self.mine)
            new = old.with_name(f"renamed-{self.serial}-{old.name}")
            self.serial += 1
            os.rename(old, new)
            self.mine[self.mine.index(old)] = new
            self.expected[new.name] = self.expected.pop(old.name)
            self.renamed += 1
        else:
            old = self.rng.choice(self.mine)
            old.unlink()
            self.mine.remove(old)
            del self.expected[old.name]
            self.deleted += 1


def kiosk_audio(database: Path) -> dict:
    """The kiosk's audio figures from its beacon (what ``art2mus status`` shows)."""
    from engine.beacons import read_beacons
    from engine.health import ServiceName

    for beacon in read_beacons(database):
        if beacon.service == ServiceName.KIOSK and beacon.alive:
            return dict(beacon.extra.get("audio") or {})
    return {}


def missing_clips(database: Path) -> tuple[int, list[str]]:
    """(ready artworks, paths of those without a clip of their image)."""
    from engine.store import ArtworkStatus

    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as conn:
        ready = conn.execute("SELECT count(*) FROM artworks WHERE status = ?", (ArtworkStatus.READY.value,))
        total = ready.fetchone()[0]
        rows = conn.execute(
            "SELECT path FROM artworks a WHERE status = ? AND NOT EXISTS "
            "(SELECT 1 FROM clips c WHERE c.image_hash = a.image_hash) ORDER BY path",
            (ArtworkStatus.READY.value,),
        ).fetchall()
    return total, [r[0] for r in rows]


def clip_count(database: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)) as conn:
        return int(conn.execute("SELECT count(*) FROM clips").fetchone()[0])


class Visitor:
    """Touches an artwork: what the kiosk's window does, through KioskServices on the shared
    database. The music it would play (the artwork's own clip, or the nearest ready one) is
    looked up and decoded; without a clip of its own a ``visitor`` job is queued as the
    kiosk's backend does (``installation/kiosk/backend.py``)."""

    def __init__(self, database: Path, collection: Path, rng: random.Random):
        from engine.store import Database
        from engine.store.clips import ClipStore
        from engine.store.jobs import JobQueue
        from installation.kiosk.services import KioskServices

        self.db = Database(database)
        self.clips = ClipStore(self.db)
        self.jobs = JobQueue(self.db)
        self.services = KioskServices(
            self.db,
            collection,
            player=None,  # type: ignore[arg-type]  # this process plays nothing
            clip_store=self.clips,
            job_queue=self.jobs,
            engine_info=None,  # type: ignore[arg-type]
            enqueue_job=self._enqueue,
        )
        self.rng = rng
        self.touches = self.jobs_queued = 0

    def _enqueue(self, kind, detail, priority) -> int | None:
        import json

        from engine.store.jobs import OPEN_STATUSES

        engine, params = "", None
        open_job = self.jobs.latest_for(detail.id)
        if open_job is not None and open_job.status in OPEN_STATUSES:
            engine = open_job.engine
            params = json.loads(open_job.params_json or "{}") or None
        self.jobs_queued += 1
        return self.jobs.enqueue(
            kind,
            artwork_id=detail.id,
            image_hash=detail.image_hash,
            engine=engine,
            params=params,
            priority=priority,
        )

    def touch(self) -> None:
        from engine.store import ArtworkStatus
        from installation.kiosk.services import MusicState

        entries = [e for e in self.services.entries() if e.status == ArtworkStatus.READY.value]
        if not entries:
            return
        # Visitors go to what is new: half the touches are for an artwork still without its
        # music (a curator's new image), which is when the kiosk asks the engine for it.
        waiting = [e for e in entries if e.music != MusicState.READY]
        entry = self.rng.choice(waiting if waiting and self.rng.random() < 0.5 else entries)
        self.touches += 1
        choice = self.services.clip_choice(entry.id)
        if choice is not None:
            with contextlib.suppress(Exception):  # a clip pruned meanwhile: the kiosk would fall back too
                self.clips.load_audio(choice.clip.id)
        if choice is None or not choice.own:
            self.services.request_music(entry.id)

    def close(self) -> None:
        self.db.close()


def read_log(path: Path) -> tuple[list[str], int]:
    text = path.read_text(errors="replace") if path.exists() else ""
    lines = text.splitlines()
    return [line for line in lines if PROBLEM.search(line)], sum("Traceback" in line for line in lines)


@contextlib.contextmanager
def _processes(workdir: Path, config: Path, jack_name: str) -> Iterator[dict[str, subprocess.Popen]]:
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        QT_QPA_PLATFORM="offscreen",
        JACK_DEFAULT_SERVER=jack_name,
        JACK_NO_START_SERVER="1",
        JACK_NO_AUDIO_RESERVATION="1",
        PYTHONFAULTHANDLER="1",
        OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
    )
    env.pop("NOTIFY_SOCKET", None)
    procs: dict[str, subprocess.Popen] = {}
    try:
        procs["jackd"] = start_jack(jack_name, workdir / "jackd.log")
        for name, args in (("engine", ["engine", "serve"]), ("kiosk", ["kiosk"])):
            with open(workdir / f"{name}.log", "wb") as log:
                procs[name] = subprocess.Popen(
                    [sys.executable, "-m", "art2mus", "--config", str(config), *args],
                    cwd=workdir,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
        yield procs
    finally:
        # The kiosk and the engine before the JACK server they play into.
        for name in ("kiosk", "engine", "jackd"):
            if name in procs:
                stop(procs[name], 30)


def run_soak(
    seconds: float,
    workdir: Path,
    *,
    visitor_every: float = 3.0,
    curator_every: float = 10.0,
    sample_every: float = 5.0,
    clip_seconds: float = 6.0,
    settle_timeout: float = 120.0,
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> SoakResult:
    rng = random.Random(seed)
    collection = workdir / "collection"
    shutil.copytree(DEMO, collection)
    database = workdir / "art2mus.db"
    config = write_config(workdir, collection, database, clip_seconds)
    curator = Curator(collection, rng)
    result = SoakResult(seconds=seconds)
    with _processes(workdir, config, f"art2mus-soak-{os.getpid()}") as procs:
        # The engine makes the database; wait for it before the visitor opens it.
        deadline = time.monotonic() + 60
        while not database.exists():
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {proc.returncode}; see {workdir / (name + '.log')}"
                    )
            if time.monotonic() > deadline:
                raise RuntimeError("the engine service made no database in 60 s")
            time.sleep(0.2)
        time.sleep(1.0)
        visitor = Visitor(database, collection, rng)
        start = time.monotonic()
        next_visit = next_curate = next_sample = start
        try:
            while (now := time.monotonic()) - start < seconds:
                for name in ("engine", "kiosk"):
                    if procs[name].poll() is not None:
                        raise RuntimeError(f"{name} exited with {procs[name].returncode} during the soak")
                if now >= next_sample:
                    rss = {n: v for n, p in procs.items() if (v := rss_mb(p.pid)) is not None}
                    result.memory.append((now - start, rss))
                    audio = kiosk_audio(database)
                    if audio.get("underruns") is not None:
                        result.underrun_series.append((now - start, int(audio["underruns"])))
                    say(
                        f"{now - start:7.0f} s  "
                        + "  ".join(f"{n} {v:6.0f} MB" for n, v in rss.items())
                        + f"  clips {clip_count(database)}  underruns {audio.get('underruns')}"
                    )
                    next_sample += sample_every
                if now >= next_visit:
                    visitor.touch()
                    next_visit += visitor_every * rng.uniform(0.5, 1.5)
                if now >= next_curate:
                    curator.act()
                    next_curate += curator_every * rng.uniform(0.5, 1.5)
                time.sleep(0.1)
            audio = kiosk_audio(database)
            result.underruns, result.restarts = audio.get("underruns"), audio.get("restarts")
            # Then until every artwork has its music (the last curator's image is new).
            deadline = time.monotonic() + settle_timeout
            while missing_clips(database)[1] and time.monotonic() < deadline:
                time.sleep(0.5)
            # The figures at the very end, the kiosk still running.
            audio = kiosk_audio(database)
            if audio:
                result.underruns, result.restarts = audio.get("underruns"), audio.get("restarts")
        finally:
            visitor.close()
            result.touches, result.visitor_jobs = visitor.touches, visitor.jobs_queued
    result.exit_codes = {n: p.returncode for n, p in procs.items()}
    result.clips = clip_count(database)
    result.artworks, result.without_clip = missing_clips(database)
    result.added, result.renamed, result.deleted = curator.added, curator.renamed, curator.deleted
    now_hashes = file_hashes(collection)
    result.changed_files = sorted(
        name
        for name in set(now_hashes) | set(curator.expected)
        if now_hashes.get(name) != curator.expected.get(name) and not name.startswith(".")
    )
    for name in ("engine", "kiosk"):
        result.problems[name], result.tracebacks[name] = read_log(workdir / f"{name}.log")
    return result


def report(result: SoakResult, say: Callable[[str], None] = print) -> None:
    say("")
    names = sorted({n for _, m in result.memory for n in m})
    for name in names:
        series = [m[name] for _, m in result.memory if name in m]
        say(
            f"{name:7s} RSS start {series[0]:6.0f} MB  peak {max(series):6.0f} MB  end {series[-1]:6.0f} MB  "
            f"growth after warm-up {result.growth_mb(name):+6.1f} MB"
        )
    say(
        f"audio   underruns {result.underruns} ({result.underruns_after_warmup()} after warm-up)  "
        f"restarts {result.restarts}"
    )
    say(f"visitor {result.touches} touches, {result.visitor_jobs} visitor jobs queued")
    say(f"curator {result.added} added, {result.renamed} renamed, {result.deleted} deleted")
    say(
        f"clips   {result.clips} made; {result.artworks} artworks ready, "
        f"{len(result.without_clip)} without a clip {result.without_clip or ''}"
    )
    say(f"files   {'as the curator left them' if not result.changed_files else result.changed_files}")
    say(f"exit    {result.exit_codes}")
    for name, lines in result.problems.items():
        say(f"{name} log: {len(lines)} WARNING/ERROR lines, {result.tracebacks.get(name, 0)} tracebacks")
        for line in lines:
            say(f"  {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long (default 30)")
    parser.add_argument("--visitor-every", type=float, default=3.0, help="seconds between touches")
    parser.add_argument("--curator-every", type=float, default=20.0, help="seconds between folder changes")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, database)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="art2mus-soak-"))
    try:
        result = run_soak(
            args.minutes * 60,
            workdir,
            visitor_every=args.visitor_every,
            curator_every=args.curator_every,
            sample_every=max(5.0, args.minutes * 60 / 60),
        )
        report(result)
    finally:
        if args.keep:
            print(f"work folder: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
