"""Aligner training throughput: samples/s per process with precomputed latents.

    python benchmarks/training_throughput.py                     # CUDA: full size, bf16, batch 32
    python benchmarks/training_throughput.py --size tiny         # the CPU figure (automatic without CUDA)
    python benchmarks/training_throughput.py --size full --batch 32 --gradient-checkpointing

Full size is the AudioLDM 2 music architecture (arch.FULL: UNet ~350M parameters, GPT-2 base)
with random weights, which trains exactly as fast as the real ones; the latents are 10-s
(8, 250, 16) as precomputed by `art2mus train prepare`. Each step is the training step of
training/train.py: aligner (1024 → 16×768) → GPT-2's 8 LoA steps → UNet forward and backward
through the frozen parts into the aligner, Min-SNR-γ loss, AdamW. The paper's run is about
5.5 samples/s per A100 (37,200 steps × 128 in 60 h on 4 GPUs); the target is ≥ 22 per H100/H200.
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import torch

from engine.engines.diffusion import architectures as arch
from engine.engines.diffusion.aligner import ImageAligner
from training.grad_checkpoint import enable_checkpointing
from training.objective import alphas_cumprod, weighted_loss

PAPER_SAMPLES_PER_S_PER_A100 = 37200 * 128 / (60 * 3600) / 4


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", choices=["tiny", "full"], default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="timed steps (after 2 warm-up steps)")
    p.add_argument("--seconds", type=float, default=10.0, help="clip length of the latents")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None)
    p.add_argument("--gradient-checkpointing", action="store_true")
    args = p.parse_args()
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    size = args.size or ("full" if cuda else "tiny")
    batch = args.batch or (32 if cuda else 4)
    steps = args.steps or (20 if cuda else 10)
    precision = args.precision or ("bf16" if cuda else "fp32")
    sizes = arch.FULL if size == "full" else arch.TINY

    models = arch.build_models(sizes, seed=0)
    for name in ("unet", "language_model"):
        models[name].to(device).requires_grad_(False).eval()
    if args.gradient_checkpointing:
        enable_checkpointing(models["unet"])
    t5_len = 8
    bundle = SimpleNamespace(
        unet=models["unet"],
        language_model=models["language_model"],
        conditioning={
            "prompt_embeds": torch.randn(1, t5_len, sizes.t5_dim, device=device),
            "attention_mask": torch.ones(1, t5_len, dtype=torch.long, device=device),
        },
    )
    aligner = ImageAligner(1024, 1024, 16, sizes.lm_dim).to(device).train()
    opt = torch.optim.AdamW(aligner.parameters(), lr=2e-5)
    alphas = alphas_cumprod(arch.scheduler_config()).to(device)
    frames = int(args.seconds * arch.SAMPLE_RATE / arch.HOP_LENGTH) // 4
    shape = (batch, arch.LATENT_CHANNELS, frames, arch.MEL_BINS // 4)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32

    def step() -> float:
        embeds = torch.nn.functional.normalize(torch.randn(batch, 1024, device=device), dim=1)
        latents, noise = torch.randn(shape, device=device), torch.randn(shape, device=device)
        t = torch.randint(0, 1000, (batch,), device=device)
        with torch.autocast(device, dtype=dtype, enabled=dtype != torch.float32):
            loss = weighted_loss(bundle, aligner, alphas, embeds, latents, noise, t)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    for _ in range(2):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    rate = steps * batch / elapsed
    name = torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} threads)"
    unet_params = sum(p.numel() for p in models["unet"].parameters()) / 1e6
    print(
        f"device: {name}; size {size} (UNet {unet_params:.1f}M parameters); latents {shape[1:]}; {precision}"
    )
    print(f"batch {batch}, {steps} timed steps, gradient checkpointing {args.gradient_checkpointing}")
    print(f"throughput: {rate:.2f} samples/s per process ({elapsed / steps * 1000:.0f} ms/step)")
    if cuda:
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    paper = PAPER_SAMPLES_PER_S_PER_A100
    print(f"paper: {paper:.2f} samples/s per A100; target ≥ {4 * paper:.1f} per H100/H200", end="")
    print(
        f" (this run: {rate / paper:.2f}× the paper's per-GPU rate)"
        if size == "full"
        else " (tiny size: not comparable)"
    )


if __name__ == "__main__":
    main()
