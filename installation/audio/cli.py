"""``art2mus audio``: list the output devices; play files to audition clips or test speakers."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click

from engine.cli_support import get_config


@click.group()
def audio() -> None:
    """The sound output: devices and a test player."""


@audio.command()
@click.pass_context
def devices(ctx: click.Context) -> None:
    """List output devices (host API, channels, default rate).

    '*' marks the system default, '>' the device the configuration's audio.device picks.
    """
    from .supervisor import NoDeviceError, choose_device, list_output_devices

    wanted = get_config(ctx).audio.device
    rows = list_output_devices()
    if not rows:
        raise click.ClickException("no audio output devices found (is the sound server running?)")
    try:
        chosen = choose_device(wanted)
    except NoDeviceError:
        chosen = None
    for d in rows:
        mark = (">" if chosen and d["index"] == chosen.index else " ") + ("*" if d["default"] else " ")
        click.echo(
            f"{mark} {d['index']:3d}  {d['name']}  [{d['hostapi']}]  "
            f"{d['channels']} out, {d['default_rate']:.0f} Hz"
        )
    if wanted and chosen and not chosen.matched:
        click.echo(f"audio.device {wanted!r} matches no device: the default is used.")
    elif not wanted:
        click.echo("audio.device is empty: the default output (*) is used.")


@audio.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--crossfade",
    "crossfade",
    type=click.FloatRange(0.0, 60.0),
    default=None,
    help="Crossfade seconds (default: audio.crossfade_seconds).",
)
@click.option("--loop", is_flag=True, help="Cycle through the files until Ctrl-C.")
@click.option("--device", default=None, help="Output device (part of its name).")
@click.option(
    "--volume", type=click.FloatRange(0.0, 1.0), default=None, help="Volume 0..1 (default: audio.volume)."
)
@click.pass_context
def play(
    ctx: click.Context,
    files: tuple[Path, ...],
    crossfade: float | None,
    loop: bool,
    device: str | None,
    volume: float | None,
) -> None:
    """Play FILES in turn, crossfading each into the next (Ctrl-C fades out)."""
    from engine.loops import LoopMode, read_wav_loop

    from .decode import read_audio_file
    from .player import Player
    from .prepare import ClipError

    config = get_config(ctx).audio
    overrides = {k: v for k, v in (("device", device), ("volume", volume)) if v is not None}
    config = dataclasses.replace(config, quiet_hours=[], **overrides)
    xfade = config.crossfade_seconds if crossfade is None else crossfade
    for f in files:  # fail before any sound on a wrong name
        if not f.is_file():
            raise click.ClickException(f"{f}: file not found")

    player = Player(config)
    if not player.start():
        raise click.ClickException("no audio output device could be opened (see `art2mus audio devices`)")
    t = player.telemetry()
    click.echo(f"Output: {t['device']} [{t['hostapi']}], {t['sample_rate']} Hz, {t['channels']} ch")

    def prepare(path: Path):
        # A file from `art2mus generate` carries its loop (a WAV smpl chunk): it loops exactly
        # as made. Other audio gets a seam at its best loop point (audio.loop_seam_seconds).
        loop = read_wav_loop(path) or LoopMode.FIND_SEAM
        try:
            return player.prepare(str(path), lambda: read_audio_file(path), loop=loop)
        except ClipError as exc:
            raise click.ClickException(str(exc)) from None

    try:
        _play_sequence(player, files, prepare, xfade, loop)
    except KeyboardInterrupt:
        click.echo("\nFading out...")
        player.fade_out(1.0)
        time.sleep(1.2)
    finally:
        t = player.telemetry()
        player.close()
        click.echo(
            f"Underruns {t['underruns']}, stream restarts {t['restarts']}, "
            f"callback load {t['callback_load']:.1%} (max {t['callback_load_max']:.1%})"
        )


def _play_sequence(player, files, prepare, xfade: float, loop: bool) -> None:
    clips = [prepare(files[0])]
    single = len(files) == 1
    i = 0
    fade = min(xfade, clips[0].duration / 2)
    while True:
        clip = clips[i % len(files)] if len(clips) == len(files) else clips[-1]
        player.crossfade_to(clip, fade, loop=single and loop)
        click.echo(f"Playing {Path(clip.key).name} ({clip.duration:.1f} s)")
        if single and loop:
            while True:
                time.sleep(1.0)
        following = i + 1
        if following >= len(files) and not loop:
            _wait_until(lambda key=clip.key: player.now_playing != key)
            return
        if len(clips) < len(files):
            clips.append(prepare(files[following]))  # while the current one plays
        nxt = clips[following % len(files)]
        # Start the next crossfade so that it ends as the current clip does.
        fade = min(xfade, clip.duration / 2, nxt.duration / 2)
        _wait_until(
            lambda end=clip.duration - fade, key=clip.key: (
                player.position() >= end or player.now_playing != key
            )
        )
        i = following


def _wait_until(condition, poll: float = 0.02) -> None:
    while not condition():
        time.sleep(poll)
