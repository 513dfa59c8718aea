"""Music engines: the embedded default (CPU) engine and the Art2Mus diffusion engine."""

from .base import Engine, GeneratedClip, GenerationError, check_request, params_hash

__all__ = ["Engine", "GeneratedClip", "GenerationError", "check_request", "params_hash"]
