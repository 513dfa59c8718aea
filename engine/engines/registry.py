"""Which engines exist, and which one this machine runs.

Engines are named by "module:factory" strings and imported only when created, so choosing the
default engine never imports torch. ``resolve_engine`` applies ``engine.name`` from the
configuration; "auto" prefers the Art2Mus diffusion engine when this machine has a CUDA GPU
and a model bundle that loads, and otherwise falls back to the default engine, saying why.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING

from .base import Engine

if TYPE_CHECKING:
    from engine.config import Config

log = logging.getLogger(__name__)

# name -> "module:factory"; factory(config) -> Engine
ENGINES: dict[str, str] = {
    "default": "engine.engines.default.engine:create_default_engine",
    "art2mus": "engine.engines.diffusion.engine:create_art2mus_engine",
}


class EngineLoadError(RuntimeError):
    """An engine that was asked for cannot be created; the message says what is missing."""


def clip_duration(config: Config, engine_name: str) -> float:
    """Seconds per clip for the engine ``engine_name``: Art2Mus generates at AudioLDM 2's
    trained length (``diffusion.duration``, docs/art2mus-engine.md "Clip length"), the
    default engine composes ``engine.duration``."""
    if engine_name == "art2mus":
        return float(config.diffusion.duration)
    return float(config.engine.duration)


def available_engines() -> list[str]:
    return sorted(ENGINES)


def create_engine(name: str, config: Config) -> Engine:
    """Create the engine called ``name`` ("default" or "art2mus") for ``config``."""
    if name not in ENGINES:
        raise EngineLoadError(f"unknown engine {name!r}; expected one of: {', '.join(available_engines())}")
    module_name, factory_name = ENGINES[name].split(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError) as exc:
        raise EngineLoadError(_load_message(name, config, f"cannot import {ENGINES[name]}: {exc}")) from exc
    try:
        return factory(config)
    except EngineLoadError:
        raise
    except Exception as exc:  # any failure to load a model is a load error, with its reason
        raise EngineLoadError(_load_message(name, config, str(exc) or type(exc).__name__)) from exc


def _load_message(name: str, config: Config, reason: str) -> str:
    if name == "art2mus":
        folder = config.engine.model
        where = f"model folder {folder}" if folder else "no model folder configured (engine.model)"
        return f"cannot load the art2mus engine ({where}): {reason}"
    return f"cannot load the {name} engine: {reason}"


def cuda_available() -> tuple[bool, str]:
    """Whether a CUDA GPU can be used, and if not why (imports torch only when installed)."""
    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    try:
        if torch.cuda.is_available():
            return True, f"CUDA GPU {torch.cuda.get_device_name(0)}"
    except Exception as exc:  # a broken driver reports here
        return False, f"CUDA is not usable: {exc}"
    return False, "no CUDA GPU"


def resolve_engine(config: Config) -> tuple[Engine, str]:
    """The engine this machine runs, and a sentence saying which and why (for the log/panel)."""
    wanted = config.engine.name
    if wanted != "auto":
        engine = create_engine(wanted, config)
        return engine, f"{engine.name} engine (configured as engine.name = {wanted!r})"

    model = config.engine.model
    if model is None:
        reason = "no model bundle configured (engine.model)"
    elif not model.exists():
        reason = f"model folder {model} does not exist"
    else:
        has_gpu, gpu_text = cuda_available()
        if not has_gpu:
            reason = gpu_text
        else:
            try:
                engine = create_engine("art2mus", config)
            except EngineLoadError as exc:
                reason = str(exc)
            else:
                return engine, f"art2mus engine (auto: {gpu_text}, model {model})"
    log.info("engine auto: using the default engine: %s", reason)
    engine = create_engine("default", config)
    return engine, f"default engine (auto: {reason})"
