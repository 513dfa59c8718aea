"""Several worker processes, one per GPU, sharing one job queue.

A large collection pregenerates on every GPU of a machine: each child process sees one GPU
(``CUDA_VISIBLE_DEVICES`` is set in the child before torch is imported), loads its own copy
of the engine and claims jobs from the shared database. ``JobQueue.claim`` is one atomic
``UPDATE ... RETURNING`` in a ``BEGIN IMMEDIATE`` transaction, so no job is ever taken twice;
a child that dies leaves its job to be requeued by the heartbeat check.

Only the first child queues the missing artworks, so the queue is filled once. It queues in a
thread, in chunks (``JobQueue.enqueue_missing``), while every child, itself included, already
claims and generates: no GPU waits for the queue. A child that finds the queue empty before the
queueing is done waits for it (saying so in the log once a minute) instead of stopping; it
never gives up on its own, and the first child signals "queued" even when it fails. In service
mode the first child runs the whole engine service (catalog sync and watching, queueing) and
the others only work jobs.

Children are started with the "spawn" method: a fresh interpreter per child, so no CUDA or
torch state is inherited from the parent, which never imports torch itself.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# How often a worker that waits for the queue to be filled says so in the log.
QUEUE_WAIT_LOG_S = 60.0
# How often each worker process tells the parent how long its loop has been idle.
PULSE_SECONDS = 1.0


class PoolPulses:
    """How long each worker process's loop has been idle, shared with the parent.

    ``engine serve --gpus`` pings systemd's watchdog from the parent, which generates nothing
    itself: it pings only while every child's loop turns (as the one-process service does with
    its own ``LoopPulse``). Per child two numbers: the seconds its loop has been idle (0 while it
    waits on purpose), and when it last said so (CLOCK_MONOTONIC, one clock for all processes of
    the machine), so a child frozen whole, or stuck loading its engine, is noticed too.
    """

    def __init__(self, count: int):
        self.count = count
        self.values = mp.get_context("spawn").Array("d", 2 * count, lock=False)
        # Loading an engine counts as a turn that takes long: a child that never reports (hung
        # while loading, or frozen before its loop began) is noticed after the same limit.
        for index in range(count):
            self.values[2 * index + 1] = time.monotonic()

    def trouble(self, limit: float) -> str | None:
        """None while every child's loop turns; else which one does not, and for how long."""
        now = time.monotonic()
        for index in range(self.count):
            idle, said = self.values[2 * index], self.values[2 * index + 1]
            if now - said > limit:
                return f"worker process {index} has not reported for more than {limit:g} s"
            if idle > limit:
                return f"the loop of worker process {index} has not turned for more than {limit:g} s"
        return None


@dataclass
class PoolResult:
    """What one child process did."""

    device: str
    worker_id: str
    ok: bool
    engine: str = ""
    done: int = 0
    clips: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def parse_devices(spec: str) -> list[str]:
    """``--gpus`` values: "N" (GPUs 0..N-1), "all", "0,2" (those GPUs) or "cpu:N" (N CPU workers)."""
    spec = spec.strip().lower()
    if spec.startswith("cpu:"):
        count = spec[4:]
        if not count.isdigit() or int(count) < 1:
            raise ValueError(f"--gpus {spec!r}: after 'cpu:' give a number of worker processes (1 or more)")
        return ["cpu"] * int(count)
    if spec == "all" or spec.isdigit():
        available = _cuda_device_count()
        wanted = available if spec == "all" else int(spec)
        if wanted < 1 or wanted > available:
            raise ValueError(f"--gpus {spec}: this machine has {available} usable CUDA GPU(s)")
        return [f"cuda:{i}" for i in range(wanted)]
    try:
        indices = [int(part) for part in spec.split(",")]
    except ValueError:
        raise ValueError(f"--gpus {spec!r}: expected a count, 'all', a list such as 0,2, or cpu:N") from None
    available = _cuda_device_count()
    bad = [i for i in indices if not 0 <= i < available]
    if bad or len(set(indices)) != len(indices):
        raise ValueError(f"--gpus {spec}: GPUs are numbered 0 to {available - 1} on this machine, each once")
    return [f"cuda:{i}" for i in indices]


def _cuda_device_count() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def run_pool(
    devices: list[str],
    *,
    config_path: str | os.PathLike | None,
    db_path: str | os.PathLike,
    engine_name: str | None = None,
    model: str | os.PathLike | None = None,
    until_idle: bool = True,
    stop: threading.Event | None = None,
    pulses: PoolPulses | None = None,
) -> list[PoolResult]:
    """Run one worker process per entry of ``devices`` until the queue is empty (or ``stop``).

    The first child queues what is missing (``until_idle``) or runs the engine service.
    ``model`` overrides ``engine.model`` of the configuration (the ``--model`` option);
    ``pulses`` (one per device) receives how long each child's loop has been idle.
    Returns one :class:`PoolResult` per child.
    """
    ctx = mp.get_context("spawn")
    queued = ctx.Event()
    child_stop = ctx.Event()
    results = ctx.Queue()
    level = logging.getLogger().getEffectiveLevel()
    children = []
    for index, device in enumerate(devices):
        worker_id = f"{device}#{index}"  # the child adds "host:pid:" in front
        child = ctx.Process(
            target=_child_main,
            name=f"art2mus-worker-{index}",
            args=(
                index,
                device,
                worker_id,
                str(config_path) if config_path else None,
                str(db_path),
                engine_name,
                str(Path(model).expanduser().resolve()) if model else None,
                until_idle,
                queued,
                child_stop,
                results,
                level,
                pulses.values if pulses is not None else None,
            ),
        )
        child.start()
        children.append(child)
    log.info("started %d worker processes on %s", len(children), ", ".join(devices))
    collected: list[PoolResult] = []
    try:
        while len(collected) < len(children):
            if stop is not None and stop.is_set():
                child_stop.set()
            try:
                collected.append(results.get(timeout=0.5))
            except Exception:  # queue.Empty: check on the children
                if not any(c.is_alive() for c in children) and results.empty():
                    break
    finally:
        child_stop.set()
        for child in children:
            child.join(timeout=60)
        for child in children:
            if child.is_alive():  # only ours, by their process objects
                log.warning("worker process %s did not stop; terminating it", child.pid)
                child.terminate()
                child.join(timeout=10)
    for index, child in enumerate(children):
        if child.exitcode not in (0, None) and not any(
            r.device == devices[index] and not r.ok for r in collected
        ):
            collected.append(
                PoolResult(
                    devices[index],
                    child.name,
                    False,
                    errors=[f"worker process exited with code {child.exitcode}"],
                )
            )
    return collected


def _child_main(
    index,
    device,
    worker_id,
    config_path,
    db_path,
    engine_name,
    model,
    until_idle,
    queued,
    stop,
    results,
    level,
    pulse_values=None,
) -> None:
    # "host:pid:..." like every worker id, so a restarted service can tell ours are gone.
    worker_id = f"{socket.gethostname()}:{os.getpid()}:{worker_id}"
    # Only the parent speaks to systemd (engine serve --gpus): its watchdog pings for all.
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        os.environ.pop(name, None)
    # Before anything imports torch: this process sees only its own GPU, as cuda:0.
    if device.startswith("cuda:"):
        os.environ["CUDA_VISIBLE_DEVICES"] = device.split(":", 1)[1]
    logging.basicConfig(level=level, format=f"%(asctime)s %(levelname)s [{device}] %(name)s: %(message)s")
    # Ctrl-C reaches the whole process group: treat it, like SIGTERM, as "finish the job, stop".
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    result = PoolResult(device, worker_id, ok=False)
    try:
        _work(
            index,
            device,
            worker_id,
            config_path,
            db_path,
            engine_name,
            model,
            until_idle,
            queued,
            stop,
            result,
            pulse_values,
        )
        result.ok = True
    except Exception as exc:  # reported to the parent, which prints it
        result.errors.append(f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc))
        logging.getLogger(__name__).exception("worker %s failed", worker_id)
    finally:
        if index == 0:
            queued.set()  # never leave the others waiting
        results.put(result)


def _work(
    index,
    device,
    worker_id,
    config_path,
    db_path,
    engine_name,
    model,
    until_idle,
    queued,
    stop,
    result: PoolResult,
    pulse_values=None,
) -> None:
    from engine.config import default_config, load_config
    from engine.engines.registry import create_engine, resolve_engine
    from engine.store import Database
    from engine.worker import Worker, WorkerSummary

    config = load_config(config_path) if config_path else default_config()
    config.diffusion.device = "cuda" if device.startswith("cuda") else "cpu"
    if model:
        config.engine.model = Path(model)
    if engine_name and engine_name != "auto":
        engine = create_engine(engine_name, config)
        why = f"{engine.name} engine (--engine {engine_name})"
    else:
        engine, why = resolve_engine(config)
        logging.getLogger(__name__).info("worker %s: %s", worker_id, why)
    result.engine = engine.name
    db = Database(Path(db_path))
    try:
        # Several artworks per engine call: the GPU's throughput comes from batches.
        worker = Worker(db, engine, config, worker_id=worker_id, batch_artworks=True)
        if not until_idle and index == 0:
            from engine.service import EngineService

            queued.set()
            EngineService(worker, f"{why}; {worker_id} and the other worker processes").run(
                _pulse(stop, pulse_values, index)
            )
            return
        if index == 0:
            _queue_in_background(worker, queued)
        if not until_idle:
            _wait_for_queue(queued, stop, worker_id)
            worker.run(_pulse(stop, pulse_values, index))
            return
        summary = WorkerSummary()
        while not stop.is_set():
            # Read before claiming: an empty queue means "done" only if queueing had ended.
            complete = queued.is_set()
            job = worker.run_once()
            if job is not None:
                summary.add(job)
            elif complete:
                break
            else:
                _wait_for_queue(queued, stop, worker_id)
        result.done, result.clips = summary.done, summary.clips
        result.skipped, result.failed = summary.skipped, summary.failed + summary.retrying
        result.errors += [
            f"{path}: {error}" if path and path not in error else error for path, error in summary.errors
        ]
    finally:
        db.close()


def _pulse(mp_event, pulse_values, index: int) -> threading.Event:
    """The stop event for this child's worker loop; with ``pulse_values``, a ``LoopPulse`` whose
    idle time a thread hands to the parent every ``PULSE_SECONDS``."""
    from engine.service import LoopPulse

    pulse = LoopPulse(_as_threading_event(mp_event))
    if pulse_values is None:
        return pulse

    def report() -> None:
        while not pulse.stop.wait(PULSE_SECONDS):
            pulse_values[2 * index] = pulse.idle_seconds()
            pulse_values[2 * index + 1] = time.monotonic()

    threading.Thread(target=report, name="pulse-to-parent", daemon=True).start()
    return pulse


def _queue_in_background(worker, queued) -> None:
    """Queue the missing artworks in a thread of the first child, then set ``queued`` (also
    when queueing failed: the error is logged, and the others must not wait for ever)."""

    def fill() -> None:
        try:
            worker.enqueue_missing()
        except Exception:
            log.exception("worker %s could not queue the missing artworks", worker.worker_id)
        finally:
            queued.set()

    threading.Thread(target=fill, name="enqueue-missing", daemon=True).start()


def _wait_for_queue(queued, stop, worker_id: str) -> None:
    """Wait until the first child has queued the work (or ``stop``), saying so once a minute."""
    started = time.monotonic()
    said = started
    while not queued.wait(1.0) and not stop.is_set():
        now = time.monotonic()
        if now - said >= QUEUE_WAIT_LOG_S:
            said = now
            log.info(
                "worker %s: waiting for the first worker to queue the artworks (%.0f s)",
                worker_id,
                now - started,
            )


def _as_threading_event(mp_event) -> threading.Event:
    """A threading.Event that follows a multiprocessing one (Worker.run waits on it)."""
    event = threading.Event()

    def follow() -> None:
        while not mp_event.wait(0.5):
            pass
        event.set()

    threading.Thread(target=follow, name="stop-follower", daemon=True).start()
    return event
