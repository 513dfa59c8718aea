"""The UNet as CUDA graphs: one capture per input shape, replayed at every step.

At batch 1 the UNet issues some 6,000 kernels per call, so on an H100/H200 the GPU waits on
the CPU launching them. A CUDA graph records the launches once and replays them with one call.
:class:`GraphedUNet` keeps one graph per (batch × clip length) shape: the first call at a shape
warms the UNet up on a side stream and captures it into static input/output buffers; every
later call copies its inputs into those buffers and replays. The steps of a generation, and
all later generations of the same batch size and duration, reuse the capture.

CUDA only (``diffusion.cuda_graphs``; the engine leaves it off on a CPU). The captured graph
recomputes the cross-attention K/V itself, so the K/V cache (kv_cache.py) is not used with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class _Capture:
    graph: torch.cuda.CUDAGraph
    inputs: dict[str, torch.Tensor]
    output: torch.Tensor


class GraphedUNet:
    """Callable like the UNet (the keyword arguments ``Art2MusPipeline.denoise`` passes)."""

    WARMUP_CALLS = 3  # cuDNN autotuning and lazy initialisation happen before the capture

    def __init__(self, unet: nn.Module):
        self.unet = unet
        self.captures: dict[tuple, _Capture] = {}
        self.config = unet.config

    def __call__(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        *,
        encoder_hidden_states: torch.Tensor,
        encoder_hidden_states_1: torch.Tensor,
        encoder_attention_mask_1: torch.Tensor,
        return_dict: bool = False,
    ) -> tuple[torch.Tensor]:
        if sample.device.type != "cuda":
            raise RuntimeError("CUDA graphs need the UNet on a CUDA device")
        inputs = {
            "sample": sample,
            "timestep": timestep.reshape(()),
            "encoder_hidden_states": encoder_hidden_states,
            "encoder_hidden_states_1": encoder_hidden_states_1,
            "encoder_attention_mask_1": encoder_attention_mask_1,
        }
        key = tuple((name, tuple(t.shape), t.dtype) for name, t in inputs.items())
        capture = self.captures.get(key)
        if capture is None:
            capture = self.captures[key] = self._capture(inputs)
        for name, value in inputs.items():
            capture.inputs[name].copy_(value)
        capture.graph.replay()
        # A copy: the next replay overwrites the static output, and samplers keep past outputs.
        return (capture.output.clone(),)

    def _run(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.unet(
            inputs["sample"],
            inputs["timestep"],
            encoder_hidden_states=inputs["encoder_hidden_states"],
            encoder_hidden_states_1=inputs["encoder_hidden_states_1"],
            encoder_attention_mask_1=inputs["encoder_attention_mask_1"],
            return_dict=False,
        )[0]

    def _capture(self, inputs: dict[str, torch.Tensor]) -> _Capture:
        static = {name: t.detach().clone() for name, t in inputs.items()}
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(self.WARMUP_CALLS):
                self._run(static)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.no_grad():
            output = self._run(static)
        return _Capture(graph, static, output)
