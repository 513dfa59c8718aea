"""The installation's configuration: one TOML file, every key with a default.

Each ``[section]`` of ``art2mus.toml`` is a dataclass below. Loading walks the TOML table
against those dataclasses, so an unknown key or a value of the wrong type or range is refused
at start with a :class:`ConfigError` that names the file, the key and what was expected.
Paths in the file are relative to the file's own folder.
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import hashlib
import hmac
import ipaddress
import math
import os
import secrets
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "content" / "art2mus.toml"


# PBKDF2 hash of the default curator PIN "2468"; installers set their own.
DEFAULT_PIN_HASH = (
    "pbkdf2_sha256$200000$art2mus-default$667cc02c378ebfa4327d2e5357a7b9e40dcc3351c433eecf3de905c02905b9a3"
)


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names file, key and expectation."""


def _range(lo: float | None = None, hi: float | None = None, **extra: Any) -> dict[str, Any]:
    return {"range": (lo, hi), **extra}


@dataclass
class CollectionConfig:
    # The curators' folder of images and metadata.
    path: Path = Path("demo")


@dataclass
class StoreConfig:
    # The SQLite database that the engine service and the kiosk share (WAL mode).
    database: Path = Path("~/.local/share/art2mus/art2mus.db")
    # Generation pauses while the database's disk has less free space than this (0: never),
    # so that a full disk never puts the database at risk; it resumes when space returns.
    min_free_megabytes: int = field(default=1024, metadata=_range(0, 10_000_000))
    # Hours between full integrity checks of the database by the engine service (0: never);
    # a quick check runs at every start.
    integrity_check_hours: float = field(default=24.0, metadata=_range(0.0, 8760.0))
    # Clips of an artwork missing from the collection this long are pruned (it may come back
    # from a drive unplugged for a while; renamed files keep their clips anyway).
    missing_grace_days: float = field(default=30.0, metadata=_range(0.0, 3650.0))


@dataclass
class CatalogConfig:
    thumbnail_size: int = field(default=512, metadata=_range(64, 2048))
    # Images with more pixels than this are refused as decompression bombs.
    max_image_pixels: int = field(default=178_956_970, metadata=_range(1_000_000, 1_000_000_000))
    # A file must keep its size and mtime this long before the watcher reads it as final.
    settle_seconds: float = field(default=1.0, metadata=_range(0.1, 60.0))
    # While watching, a full re-scan this often catches changes the OS did not report (0: never).
    rescan_seconds: float = field(default=600.0, metadata=_range(0.0, 86400.0))


@dataclass
class EngineConfig:
    # "auto" picks the diffusion engine when a GPU and a model bundle exist, else "default".
    name: str = field(default="auto", metadata={"choices": ("auto", "default", "art2mus")})
    # Folder of an Art2Mus model bundle (see `art2mus models build`); empty means none.
    model: Path | None = None
    # Clip length of the default engine: a seamless loop composed to fill it. Art2Mus clips
    # take diffusion.duration (engine.engines.registry.clip_duration says which applies).
    duration: float = field(default=30.0, metadata=_range(5.0, 120.0))
    seed: int = field(default=0, metadata=_range(0, 2**31 - 1))
    # Candidates generated per artwork; the best by the engine's scorer is chosen, and the
    # curator may choose another. 0: as many as the engine makes quickly (engine/worker.py:
    # 2 for the default engine, measured by benchmarks/candidates.py; 1 for art2mus).
    candidates: int = field(default=0, metadata=_range(0, 16))
    steps: int = field(default=200, metadata=_range(1, 1000))
    guidance_scale: float = field(default=3.5, metadata=_range(1.0, 20.0))
    # Clips per engine call; 0 = sized from the free GPU memory at start (4 on a CPU).
    batch_size: int = field(default=0, metadata=_range(0, 64))
    # Attempts before a pregeneration job is marked failed. Only the artwork's own failures
    # count (bad image, engine error); machine faults (disk full, a killed worker) never do.
    max_attempts: int = field(default=3, metadata=_range(1, 20))
    # Failed artworks are tried again, with fresh attempts, after this many hours.
    failed_retry_hours: float = field(default=24.0, metadata=_range(0.01, 8760.0))
    # General-MIDI SoundFont (.sf2) for the default engine; empty = TimGM6mb from pretty_midi.
    soundfont: Path | None = None
    # A running job whose worker sent no heartbeat for this long is given to another worker.
    stale_seconds: float = field(default=120.0, metadata=_range(10.0, 3600.0))


@dataclass
class DiffusionConfig:
    """Settings of the Art2Mus diffusion engine (engine.name = "art2mus" or "auto")."""

    # "auto" = the first CUDA GPU if there is one, else the CPU; or "cpu", "cuda", "cuda:1".
    device: str = "auto"
    # UNet precision on a GPU: "auto" = bf16 where supported, else fp16. A CPU runs fp32.
    precision: str = field(default="auto", metadata={"choices": ("auto", "fp32", "fp16", "bf16")})
    # torch.compile the UNet (GPU only): faster after a few minutes of compiling at start.
    compile: bool = False
    # Replay the UNet as CUDA graphs, one capture per batch size x clip length (GPU only; not
    # with compile): removes the kernel-launch overhead that bounds small batches.
    cuda_graphs: bool = False
    # Denoising sampler: "ddim" (AudioLDM 2's and the paper's), or the multistep solvers
    # "dpmsolver++" / "unipc", which need fewer engine.steps (25-50) for a comparable clip.
    sampler: str = field(default="ddim", metadata={"choices": ("ddim", "dpmsolver++", "unipc")})
    # Clip length: AudioLDM 2's trained 10 s, looped (docs/art2mus-engine.md, "Clip length").
    duration: float = field(default=10.0, metadata=_range(5.0, 120.0))
    # The clip's tail is crossfaded into its head over this many seconds, so it loops seamlessly.
    loop_crossfade_seconds: float = field(default=1.5, metadata=_range(0.0, 10.0))
    # How the engine.candidates clips of an artwork are ranked: "none" keeps the first;
    # "imagebind" keeps the one whose ImageBind audio embedding is closest to the artwork's
    # image embedding, as the authors' code does (needs imagebind_checkpoint).
    scorer: str = field(default="none", metadata={"choices": ("none", "imagebind")})
    # imagebind_huge.pth (or a checkpoint in its key layout): its audio tower, and its vision
    # tower where the bundle's encoder is not ImageBind's.
    imagebind_checkpoint: Path | None = None


@dataclass
class QuietHours:
    start: str = field(default="09:00", metadata={"pattern": "HH:MM"})
    end: str = field(default="10:00", metadata={"pattern": "HH:MM"})
    volume: float = field(default=0.5, metadata=_range(0.0, 1.0))


@dataclass
class AudioConfig:
    # Output device by (part of its) name; empty or not found falls back to the default device.
    device: str = ""
    sample_rate: int = field(default=48000, metadata=_range(8000, 192000))
    block_size: int = field(default=1024, metadata=_range(64, 8192))
    crossfade_seconds: float = field(default=4.0, metadata=_range(0.5, 15.0))
    # Audio without a loop marker (a curator's file) gets a seam this long, at the loop point
    # that matches its start best; 0 loops such audio whole. Engine clips carry their loop.
    loop_seam_seconds: float = field(default=1.0, metadata=_range(0.0, 10.0))
    # The ambient programme: each ready clip plays this long while nobody chooses one, then
    # crossfades (ambient_crossfade_seconds) into the next.
    ambient_seconds: float = field(default=90.0, metadata=_range(10.0, 3600.0))
    ambient_crossfade_seconds: float = field(default=12.0, metadata=_range(1.0, 60.0))
    volume: float = field(default=0.8, metadata=_range(0.0, 1.0))
    # Volume ramps take this long (seconds) so a change is never heard as a jump.
    ramp_seconds: float = field(default=2.0, metadata=_range(0.0, 60.0))
    quiet_ramp_seconds: float = field(default=120.0, metadata=_range(0.0, 3600.0))
    quiet_hours: list[QuietHours] = field(default_factory=list)
    # Memory for decoded clips ready to play.
    cache_megabytes: int = field(default=512, metadata=_range(32, 16384))
    # Give up to systemd (exit non-zero) after this long without a working stream.
    recover_seconds: float = field(default=30.0, metadata=_range(1.0, 3600.0))


@dataclass
class KioskConfig:
    fullscreen: bool = True
    hide_cursor: bool = True
    idle_seconds: float = field(default=90.0, metadata=_range(5.0, 3600.0))
    attract_slide_seconds: float = field(default=20.0, metadata=_range(3.0, 600.0))
    # Attract mode shows each painting whole (never cropped), at most this many times its own
    # size (1.0: never enlarged), and drifts it slowly unless the museum allows no motion.
    attract_max_zoom: float = field(default=1.5, metadata=_range(1.0, 4.0))
    attract_motion: bool = True
    text_scale: float = field(default=1.0, metadata=_range(0.5, 3.0))
    # The whole interface's scale (Qt's QT_SCALE_FACTOR): 0 sets it from the screen's size
    # (2 on a 3840x2160 screen: the 1920x1080 layout at the same proportions), 1 leaves it.
    screen_scale: float = field(default=0.0, metadata=_range(0.0, 4.0))
    # The curator PIN, hashed: make one with `art2mus config hash-pin`. The default PIN is 2468.
    pin_hash: str = field(default=DEFAULT_PIN_HASH, metadata={"pattern": "pin-hash"})
    # Seconds of a long press in the top-left corner that opens the PIN pad.
    long_press_seconds: float = field(default=3.0, metadata=_range(0.5, 10.0))


@dataclass
class HealthConfig:
    # The read-only health endpoint of the engine service (GET /health), as "HOST:PORT";
    # empty: off. Keep it on loopback (127.0.0.1 or [::1]): it is meant for this PC's staff.
    listen: str = field(default="", metadata={"pattern": "host:port"})
    # The worker loop not turning for this long (one clip or batch in hand) counts as hung:
    # the engine stops its systemd watchdog pings, so systemd restarts it.
    stall_seconds: float = field(default=900.0, metadata=_range(30.0, 86400.0))


@dataclass
class CaptureConfig:
    # Where captures are kept: the straightened painting (and the camera frame only when
    # keep_full_frame is on). The kiosk and `art2mus capture --db` write here.
    folder: Path = Path("~/.local/share/art2mus/captures")
    # Hours a capture (its picture, its catalog entry and its clips) is kept; 0: until the
    # kiosk restarts.
    keep_hours: float = field(default=0.0, metadata=_range(0.0, 8760.0))
    # Also keep the whole camera frame (it may show people in the room): off unless needed.
    keep_full_frame: bool = False
    # Minutes between the kiosk's purges of captures past keep_hours.
    purge_minutes: float = field(default=10.0, metadata=_range(1.0, 1440.0))
    # Frames of the burst the best capture is chosen from (the sharpest good one).
    burst_frames: int = field(default=6, metadata=_range(1, 30))


@dataclass
class Config:
    collection: CollectionConfig = field(default_factory=CollectionConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    kiosk: KioskConfig = field(default_factory=KioskConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    # The file this configuration came from (None for built-in defaults).
    source: Path | None = field(default=None, metadata={"internal": True})


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate ``path`` (the default config when None)."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    raw = _parse_toml(data, path)
    config: Config = _build(Config, raw, path, prefix="")
    config.source = path.resolve()
    _resolve_paths(config, path.resolve().parent)
    return config


def _parse_toml(data: bytes, path: Path) -> dict[str, Any]:
    """The TOML table of ``data``; a BOM, a non-UTF-8 byte or bad syntax is refused with its
    line and column (tomllib alone would say "Invalid statement" for a BOM and raise a bare
    UnicodeDecodeError for a Latin-1 byte)."""
    if data.startswith(codecs.BOM_UTF8):
        raise ConfigError(
            f"{path}: line 1, column 1: the file starts with a UTF-8 byte-order mark (BOM); "
            "save it as UTF-8 without BOM"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        # Columns count characters, as an editor shows them, not bytes.
        column = len(data[line_start : exc.start].decode("utf-8", errors="replace")) + 1
        raise ConfigError(
            f"{path}: line {line}, column {column}: byte 0x{data[exc.start]:02x} is not UTF-8; "
            "save the file as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def default_config() -> Config:
    """The built-in defaults, with relative paths taken from ``content/``."""
    config = Config()
    _resolve_paths(config, DEFAULT_CONFIG.parent)
    return config


def _resolve_paths(config: Config, base: Path) -> None:
    def resolve(p: Path) -> Path:
        p = Path(os.path.expandvars(str(p))).expanduser()
        return p if p.is_absolute() else (base / p).resolve()

    config.collection.path = resolve(config.collection.path)
    config.store.database = resolve(config.store.database)
    config.capture.folder = resolve(config.capture.folder)
    if config.engine.model is not None:
        config.engine.model = resolve(config.engine.model)
    if config.engine.soundfont is not None:
        config.engine.soundfont = resolve(config.engine.soundfont)
    if config.diffusion.imagebind_checkpoint is not None:
        config.diffusion.imagebind_checkpoint = resolve(config.diffusion.imagebind_checkpoint)


def _build(cls: type, table: Any, file: Path, prefix: str) -> Any:
    where = prefix.rstrip(".") or "top level"
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: [{where}] must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise ConfigError(
            f"{file}: unknown key '{prefix}{unknown[0]}'; expected one of: {', '.join(sorted(fields))}"
        )
    values = {}
    for name, value in table.items():
        f = fields[name]
        values[name] = _convert(hints[name], value, f.metadata, file, f"{prefix}{name}")
    return cls(**values)


def _convert(tp: Any, value: Any, meta: Any, file: Path, key: str) -> Any:
    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{file}: key '{key}' is {value!r}; expected {expected}")

    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value == "":  # an empty string means "not set" for optional keys
            return None
        return _convert(args[0], value, meta, file, key)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise fail("a list")
        return [_convert(item, v, {}, file, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, file, prefix=f"{key}.")
    if tp is bool:
        if not isinstance(value, bool):
            raise fail("true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail("an integer")
    elif tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail("a number")
        value = float(value)
        # TOML allows nan and inf; both pass every range check (nan compares false).
        if not math.isfinite(value):
            raise fail("a finite number")
    elif tp is str:
        if not isinstance(value, str):
            raise fail("a string")
    elif tp is Path:
        if not isinstance(value, str):
            raise fail("a path (string)")
        return Path(value)
    if "range" in meta:
        lo, hi = meta["range"]
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise fail(f"a value from {lo} to {hi}")
    if "choices" in meta and value not in meta["choices"]:
        raise fail("one of " + ", ".join(repr(c) for c in meta["choices"]))
    if meta.get("pattern") == "pin-hash" and not _is_pin_hash(value):
        raise fail("a PIN hash made by `art2mus config hash-pin` (pbkdf2_sha256$...)")
    if meta.get("pattern") == "HH:MM" and not _is_hhmm(value):
        raise fail("a time of day as HH:MM (24-hour)")
    if meta.get("pattern") == "host:port" and value:
        try:
            parse_listen(value)
        except ValueError as exc:
            raise fail(f"HOST:PORT such as 127.0.0.1:8765 ({exc})") from None
    return value


def parse_listen(text: str) -> tuple[str, int]:
    """(host, port) of a ``health.listen`` value: an IP address or "localhost", then a port
    (IPv6 in brackets: ``[::1]:8765``)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError("the port must be 1 to 65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address") from None
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


DEFAULT_PIN = "2468"


def uses_default_pin(config: Config) -> bool:
    """True while the curator PIN is the shipped default: anyone who knows it can leave the kiosk."""
    return _is_default_pin(config.kiosk.pin_hash)


# A PBKDF2 check costs ~0.1 s; the health endpoint asks on every request.
@functools.lru_cache(maxsize=8)
def _is_default_pin(pin_hash: str) -> bool:
    return verify_pin(DEFAULT_PIN, pin_hash)


def hash_pin(pin: str, salt: str | None = None, iterations: int = 200_000) -> str:
    """A salted PBKDF2 hash of a curator PIN, for the ``kiosk.pin_hash`` key."""
    salt = salt if salt is not None else secrets.token_hex(8)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt.encode(), iterations).hex()
    return f"pbkdf2_sha256${iterations}${salt}${digest}"


def verify_pin(pin: str, pin_hash: str) -> bool:
    """True when ``pin`` matches ``pin_hash`` (constant-time comparison)."""
    if not _is_pin_hash(pin_hash):
        return False
    _, iterations, salt, _ = pin_hash.split("$")
    return hmac.compare_digest(hash_pin(pin, salt, int(iterations)), pin_hash)


def _is_pin_hash(text: str) -> bool:
    parts = text.split("$")
    return len(parts) == 4 and parts[0] == "pbkdf2_sha256" and parts[1].isdigit()


def _is_hhmm(text: str) -> bool:
    parts = text.split(":")
    return (
        len(parts) == 2
        and all(p.isdigit() and len(p) == 2 for p in parts)
        and int(parts[0]) < 24
        and int(parts[1]) < 60
    )
