"""The training configuration: the paper's settings as defaults, a TOML file, CLI overrides.

Every key has a default (the Art2Mus paper's run: AdamW, lr 2e-5, 1,324 warm-up steps,
37,200 steps, global batch 128, Min-SNR-γ = 5); a ``--config FILE`` may set any of them
(flat keys, or under ``[train]``), and the command line's overrides win. Unknown keys and
wrong types are refused with the file and the key named.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any


class LrSchedule(StrEnum):
    CONSTANT = "constant"  # linear warm-up, then constant
    COSINE = "cosine"  # linear warm-up, then cosine decay to 0 at max_steps


class Precision(StrEnum):
    AUTO = "auto"  # bf16 where the GPU supports it, else fp32
    FP32 = "no"
    BF16 = "bf16"
    FP16 = "fp16"


@dataclass
class TrainConfig:
    max_steps: int = 37200
    batch_size: int = 128  # global: per process × processes (× accumulation)
    grad_accum: int = 1
    lr: float = 2e-5
    warmup: int = 1324
    lr_schedule: str = LrSchedule.CONSTANT.value
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    max_grad_norm: float = 1.0
    min_snr_gamma: float = 5.0
    seed: int = 0
    log_every: int = 10
    val_every: int = 500
    val_seed: int = 1234  # fixed validation timesteps and noise, the same for every run
    save_every: int = 1000
    precision: str = Precision.AUTO.value
    gradient_checkpointing: bool = False

    def validate(self, where: str = "config") -> None:
        for name in ("max_steps", "batch_size", "grad_accum", "log_every", "val_every", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{where}: {name} must be at least 1, got {getattr(self, name)}")
        if self.warmup < 0 or self.lr <= 0:
            raise ValueError(f"{where}: warmup must be ≥ 0 and lr > 0")
        LrSchedule(self.lr_schedule)
        Precision(self.precision)


def load_config(
    path: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    cfg = TrainConfig()
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    where = "defaults"
    if path is not None:
        where = str(path)
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"{path}: cannot be read: {exc}") from None
        data = data.get("train", data)
        for key, value in data.items():
            if key not in fields:
                raise ValueError(f"{path}: unknown key {key!r}; known: {', '.join(sorted(fields))}")
            want = type(getattr(cfg, key))
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not want:
                raise ValueError(f"{path}: {key} must be {want.__name__}, got {value!r}")
            setattr(cfg, key, value)
    for key, value in (overrides or {}).items():
        if value is not None:
            setattr(cfg, key, value)
    cfg.validate(where)
    return cfg
