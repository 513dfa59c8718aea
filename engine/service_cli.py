"""CLI: `art2mus engine serve`, the engine service (engine/service.py) as a long-running process."""

from __future__ import annotations

import logging
import signal
import threading

import click

from engine.cli_support import (
    db_option,
    engine_for,
    get_config,
    gpus_option,
    model_option,
    open_database,
    parse_gpus,
)

log = logging.getLogger(__name__)


@click.group("engine")
def engine_group():
    """The engine service: catalog sync and clip generation."""


@engine_group.command()
@db_option
@model_option
@gpus_option
@click.pass_context
def serve(ctx, db_path, model, gpus):
    """Keep the catalog in step with the collection folder and generate clips until stopped.

    Stops cleanly on SIGTERM or Ctrl-C after finishing the clip in hand.
    """
    from engine.service import EngineService
    from engine.worker import Worker

    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger("engine").setLevel(logging.INFO)
    config = get_config(ctx)
    db = open_database(ctx, db_path, check="quick_check")  # a damaged file is set aside and rebuilt
    if gpus:
        _serve_on_devices(ctx, config, db, gpus, model)
        return
    engine, why = engine_for(config, None, model)
    log.info("engine service: %s, model %s, database %s", why, engine.model_version, db.path)
    stop = _stop_on_signals("stopping")
    try:
        # The GPU engine's throughput comes from several artworks per call.
        worker = Worker(db, engine, config, batch_artworks=engine.name == "art2mus")
        EngineService(worker, why).run(stop)
    finally:
        db.close()
    log.info("engine service stopped")


def _stop_on_signals(doing: str) -> threading.Event:
    """An event that SIGTERM (systemd stop) and Ctrl-C set, saying so in the log."""
    stop = threading.Event()

    def on_signal(signum, _frame):
        log.info("engine service: %s received, %s", signal.Signals(signum).name, doing)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def _serve_on_devices(ctx, config, db, gpus, model) -> None:
    """`engine serve --gpus`: the first worker process runs the service, the others only jobs."""
    from engine.sd_notify import Watchdog, notify
    from engine.worker_pool import PoolPulses, run_pool

    devices = parse_gpus(gpus)
    db_path = db.path
    db.close()
    stop = _stop_on_signals("stopping the workers")
    log.info("engine service on %d devices: %s", len(devices), ", ".join(devices))
    # systemd hears from this (main) process only: ready once the workers are started, alive
    # while every worker's loop turns (the pool ends, and with it this process, when one fails).
    notify(f"READY=1\nSTATUS=serving on {len(devices)} devices")
    pulses = PoolPulses(len(devices))
    watchdog = Watchdog(lambda: pulses.trouble(config.health.stall_seconds))
    watchdog.start()
    try:
        results = run_pool(
            devices,
            config_path=config.source,
            db_path=db_path,
            model=model,
            until_idle=False,
            stop=stop,
            pulses=pulses,
        )
    finally:
        notify("STOPPING=1")
        watchdog.stop()
    for r in results:
        for error in r.errors:
            log.error("[%s] %s", r.device, error)
    log.info("engine service stopped")
    if any(not r.ok for r in results):
        ctx.exit(1)
