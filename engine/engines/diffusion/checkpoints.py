"""Checks on model files before they are loaded, with errors that name the file.

diffusers and transformers do refuse bad checkpoints, but their messages speak of state-dict
keys deep inside a traceback. A curator or technician needs to read "this file, this key,
this shape", so every loader in the diffusion engine checks its files here first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class CheckpointError(ValueError):
    """A model file is missing, unreadable or does not fit its config; names the file."""


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing ({what})")
    return path


def read_json(path: Path, what: str) -> dict[str, Any]:
    require_file(path, what)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable {what}: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: {what} must be a JSON object")
    return data


def safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from a safetensors header, without reading the tensors."""
    from safetensors import safe_open

    require_file(path, "weights")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118 (a safetensors handle, not a dict)
    except Exception as exc:  # safetensors raises its own error types for corrupt headers
        raise CheckpointError(f"{path}: not a readable safetensors file: {exc}") from exc


def check_shapes(
    path: Path,
    found: Mapping[str, Sequence[int]],
    expected: Mapping[str, Sequence[int]],
) -> None:
    """Refuse weights with missing, unexpected or wrongly shaped tensors, naming the first ones."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [
        f"{key} has shape {tuple(found[key])}, expected {tuple(expected[key])}"
        for key in sorted(set(found) & set(expected))
        if tuple(found[key]) != tuple(expected[key])
    ]
    problems = []
    if missing:
        problems.append(f"missing tensors {_first(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors {_first(unexpected)}")
    if wrong:
        problems.append("; ".join(wrong[:3]) + (f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""))
    if problems:
        raise CheckpointError(f"{path}: does not match its config: " + "; ".join(problems))


def _first(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f" (and {len(keys) - n} more)" if len(keys) > n else "")
