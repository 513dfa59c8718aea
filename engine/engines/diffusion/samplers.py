"""The denoising samplers the engine offers (config key ``diffusion.sampler``).

AudioLDM 2 and the Art2Mus paper sample with DDIM (eta 0), 200 steps. DPM-Solver++ and UniPC
are multistep solvers of the same probability-flow ODE that reach a comparable sample in
25–50 steps; diffusers implements both, and each is built here from the bundle's own DDIM
scheduler config (same beta schedule, same timestep spacing), so only the solver changes.
How far their clips land from DDIM-200 is measured by ``benchmarks/sampler_distance.py``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Sampler(StrEnum):
    DDIM = "ddim"
    DPM_SOLVER = "dpmsolver++"
    UNIPC = "unipc"


def make_scheduler(sampler: Sampler | str, config: Any):
    """A fresh scheduler (schedulers hold per-generation state) for ``sampler`` from ``config``."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

    kind = Sampler(sampler)
    if kind is Sampler.DPM_SOLVER:
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")
    if kind is Sampler.UNIPC:
        return UniPCMultistepScheduler.from_config(config)
    return DDIMScheduler.from_config(config)


def step_kwargs(sampler: Sampler | str) -> dict[str, Any]:
    """Extra arguments of ``scheduler.step``: DDIM's eta (0, deterministic, as the pipeline)."""
    return {"eta": 0.0} if Sampler(sampler) is Sampler.DDIM else {}
