"""Art2Mus generation speed and memory: this project's pipeline vs diffusers' stock AudioLDM2Pipeline.

    python benchmarks/engine_gpu.py                       # on a CUDA GPU, full size
    python benchmarks/engine_gpu.py --tiny                # tiny size on the CPU (also automatic without CUDA)
    python benchmarks/engine_gpu.py --steps 50 200 --batches 1 4 8 16 --compile --durations 10 30
    python benchmarks/engine_gpu.py --cuda-graphs --sampler dpmsolver++ --steps 25

Full size is the AudioLDM 2 music architecture (UNet 128/256/384/640 with the [None, 768, 1024]
cross-attention streams, VAE 128/256/512 with 8 latent channels, HiFi-GAN 64 mels x160, GPT-2
base, DDIM scaled_linear 0.0015-0.0195) with random weights, which is exactly as fast as the
trained weights. Durations are the engine's: a D-s clip is generated as one pass of D + the
loop crossfade (1.5 s) + a 0.1-s margin (engine.py), so "10-s clips" time 11.6-s passes. Every
configuration runs once untimed first (cuDNN autotuning, torch.compile, allocator), on the GPU
and on the CPU alike. For each duration and step count it prints:

- the stock pipeline: diffusers' own AudioLDM2Pipeline, fp32, at batch 1 and at the engine's
  batch (--engine-batch, the engine.batch_size default 4), called with the stored
  conditioning (prompt_embeds / generated_prompt_embeds and the negatives, as Art2Mus does),
  clips per minute and GPU memory; comparing the two batch sizes isolates what batching alone
  gives from the engine's own gains;
- this project's pipeline (engine/engines/diffusion/pipeline.py) at each batch size, in bf16 or
  fp16 with channels_last, the K/V cache and host-side timesteps (and torch.compile in the
  engine's mode with --compile; --sampler for DPM-Solver++/UniPC): clips per minute, speed-up
  over the stock pipeline at batch 1, GPU memory as the engine holds it (the fp32 ImageBind-H
  tower and the aligner are resident, as in the engine process), and how closely its waveform
  follows the stock fp32 one from the same seed (correlation);
- GPU memory is given three ways: PyTorch's peak allocated and peak reserved, and the
  process's use seen by the driver (NVML, which includes the CUDA context; without pynvml,
  the device's used memory from cudaMemGetInfo);
- the UNet's FLOPs per denoising step (counted with torch.utils.flop_counter.FlopCounterMode)
  and the FLOP rate it reaches during sampling, as a fraction of the GPU's peak (a table of
  dense bf16/fp16 tensor-core peaks by GPU name; --peak-tflops overrides).

Also printed: the image conditioning (ImageBind-H vision tower + Image Aligner + GPT-2's 8 LoA
steps) per batch, and with --tiny the time the tiny bundle takes, through the engine, to make
one 10-s clip. Figures on a shared CPU are noisy; read them as rough.
"""

from __future__ import annotations

import argparse
import copy
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.engines.diffusion import architectures as arch
from engine.engines.diffusion.bundle import ModelBundle
from engine.engines.diffusion.engine import GENERATION_MARGIN_S
from engine.engines.diffusion.pipeline import Art2MusPipeline, resolve_dtype
from engine.engines.diffusion.samplers import Sampler

LOOP_CROSSFADE_S = 1.5  # diffusion.loop_crossfade_seconds default

# Dense tensor-core peaks (TFLOP/s) for bf16/fp16, and fp32 without tensor cores.
PEAK_TFLOPS = {
    "H200": (989.0, 67.0),
    "H100 SXM": (989.0, 67.0),
    "H100 NVL": (835.0, 60.0),
    "H100 PCIe": (756.0, 51.0),
    "H100": (989.0, 67.0),
    "A100": (312.0, 19.5),
    "L40S": (362.0, 91.6),
    "L4": (121.0, 30.3),
    "A10": (125.0, 31.2),
    "RTX 4090": (165.2, 82.6),
    "RTX 4080": (97.5, 48.7),
    "RTX 3090": (71.0, 35.6),
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def process_gpu_gib(device: torch.device) -> float:
    """This process's GPU memory as the driver sees it (CUDA context included).

    NVML's per-process figure where pynvml is installed, else the device's used memory from
    cudaMemGetInfo (which also counts other processes on the GPU).
    """
    try:
        import os

        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
        for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
            if proc.pid == os.getpid() and proc.usedGpuMemory:
                return proc.usedGpuMemory / 2**30
    except Exception:  # no pynvml, no NVML, or a container that hides PIDs
        pass
    free, total = torch.cuda.mem_get_info(device)
    return (total - free) / 2**30


def measure(fn, device, repeats: int) -> tuple[float, dict[str, float], object]:
    """Median seconds of ``fn()`` over the timed runs and the GPU memory they took.

    One warm-up run comes first on every device (cuDNN autotuning, torch.compile, the
    allocator's first growth, lazy initialisation on the CPU) and is not timed; the memory
    peaks count the timed runs only, but with whatever the process holds (models, encoder,
    context).
    """
    out = fn()
    memory: dict[str, float] = {}
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        sync(device)
        started = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - started)
    if device.type == "cuda":
        memory = {
            "allocated": torch.cuda.max_memory_allocated(device) / 2**30,
            "reserved": torch.cuda.max_memory_reserved(device) / 2**30,
            "process": process_gpu_gib(device),
        }
    return statistics.median(times), memory, out


def memory_text(memory: dict[str, float]) -> str:
    if not memory:
        return "GPU memory n/a on the CPU"
    return (
        f"GPU memory peak {memory['allocated']:.2f} GiB allocated, {memory['reserved']:.2f} GiB reserved, "
        f"{memory['process']:.2f} GiB for the process incl. CUDA context"
    )


def gpu_peak_tflops(device: torch.device, dtype: torch.dtype, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, (half, fp32) in PEAK_TFLOPS.items():
        if key.lower() in name.lower():
            return fp32 if dtype == torch.float32 else half
    return None


def random_conditioning(s: arch.Sizes, prompt_tokens: int = 11) -> dict[str, torch.Tensor]:
    """Stored-conditioning tensors of the real shapes (the prompt is ~11 FLAN-T5 tokens)."""
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(1, prompt_tokens, dtype=torch.long)
    negative_mask = mask.clone()
    negative_mask[:, 4:] = 0  # "Low quality" is shorter and padded, as the pipeline pads it
    return {
        "prompt_embeds": torch.randn(1, prompt_tokens, s.t5_dim, generator=g) * 0.2,
        "attention_mask": mask,
        "negative_prompt_embeds": torch.randn(1, prompt_tokens, s.t5_dim, generator=g) * 0.2,
        "negative_attention_mask": negative_mask,
        "negative_generated_prompt_embeds": torch.randn(1, arch.LOA_TOKENS, s.lm_dim, generator=g),
    }


def stock_pipeline(models: dict, s: arch.Sizes):
    """diffusers' AudioLDM2Pipeline around the same UNet/VAE/vocoder/GPT-2/scheduler.

    Its text encoders are needed to construct it but are never run (embeddings are passed),
    so the tiny ones stand in for CLAP and FLAN-T5.
    """
    from diffusers import AudioLDM2Pipeline

    from engine.engines.diffusion.tiny_audioldm2 import make_tiny_pipeline

    text = make_tiny_pipeline()
    pipe = AudioLDM2Pipeline(
        vae=models["vae"],
        text_encoder=text.text_encoder,
        text_encoder_2=text.text_encoder_2,
        projection_model=text.projection_model,
        language_model=models["language_model"],
        tokenizer=text.tokenizer,
        tokenizer_2=text.tokenizer_2,
        feature_extractor=text.feature_extractor,
        unet=models["unet"],
        scheduler=models["scheduler"],
        vocoder=models["vocoder"],
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def stock_call(pipe, cond, loa, seeds, steps, duration, guidance):
    n = len(seeds)
    return pipe(
        prompt_embeds=cond["prompt_embeds"].expand(n, -1, -1),
        attention_mask=cond["attention_mask"].expand(n, -1),
        generated_prompt_embeds=loa,
        negative_prompt_embeds=cond["negative_prompt_embeds"].expand(n, -1, -1),
        negative_attention_mask=cond["negative_attention_mask"].expand(n, -1),
        negative_generated_prompt_embeds=cond["negative_generated_prompt_embeds"].expand(n, -1, -1),
        num_inference_steps=steps,
        guidance_scale=guidance,
        audio_length_in_s=duration,
        generator=[torch.Generator("cpu").manual_seed(x) for x in seeds],
    ).audios


def unet_flops_per_step(pipeline: Art2MusPipeline, batch: int, duration: float) -> int:
    """FLOPs of one guided UNet call (2 x batch latents), counted by PyTorch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    layout = pipeline.layout(duration)
    x = torch.zeros(2 * batch, *layout.latent_shape, device=pipeline.device, dtype=pipeline.dtype)
    loa = torch.zeros(batch, arch.LOA_TOKENS, pipeline.negative_loa.shape[-1], device=pipeline.device)
    loa_in, t5_in, mask_in = pipeline._stream_inputs(loa, guided=True)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        pipeline.bundle.unet(
            x,
            torch.tensor(500, device=pipeline.device),
            encoder_hidden_states=loa_in,
            encoder_hidden_states_1=t5_in,
            encoder_attention_mask_1=mask_in,
        )
    return counter.get_total_flops()


def image_conditioning(s: arch.Sizes, device, dtype, tiny: bool):
    """Vision encoder + aligner at the real size (ImageBind-H, 16 tokens) for the conditioning figure."""
    from engine.engines.diffusion.aligner import ImageAligner
    from engine.engines.diffusion.encoders import (
        ImageBindVisionEncoder,
        load_vision_encoder,
        make_tiny_encoder,
    )

    if tiny:
        folder = Path(tempfile.mkdtemp(prefix="art2mus-bench-encoder-"))
        encoder = load_vision_encoder(make_tiny_encoder("imagebind", folder))
    else:
        from engine.engines.diffusion.imagebind_vision import ImageBindVision, ImageBindVisionConfig

        encoder = ImageBindVisionEncoder(
            ImageBindVision(ImageBindVisionConfig()).init_random(torch.Generator().manual_seed(0))
        )
    torch.manual_seed(2)
    aligner = ImageAligner(input_dim=encoder.dim, embed_dim=1024, num_tokens=16, token_dim=s.lm_dim)
    # fp32, as load_bundle keeps it in the engine process (2.35 GiB for ImageBind-H)
    encoder = encoder.to(device, torch.float32).eval()
    return encoder, aligner.to(device).eval()


def pass_seconds(clip_seconds: float) -> float:
    """The length the engine generates for a clip: the loop crossfade and a margin on top."""
    return clip_seconds + LOOP_CROSSFADE_S + GENERATION_MARGIN_S


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny architecture on the CPU")
    parser.add_argument("--steps", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--batches", type=int, nargs="+", help="batch sizes for this project's pipeline")
    parser.add_argument("--engine-batch", type=int, default=4, help="engine.batch_size, also run by stock")
    parser.add_argument("--durations", type=float, nargs="+", default=[10.0], help="clip lengths (s)")
    parser.add_argument("--guidance", type=float, default=3.5)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp16", "bf16", "fp32"])
    parser.add_argument("--sampler", default="ddim", choices=[s.value for s in Sampler])
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile the UNet as the engine does (GPU)"
    )
    parser.add_argument("--cuda-graphs", action="store_true", help="replay the UNet as CUDA graphs (GPU)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs after one warm-up")
    parser.add_argument("--no-stock", action="store_true", help="skip the stock pipeline")
    parser.add_argument(
        "--no-engine-clip",
        action="store_true",
        help="on the CPU: skip timing the tiny bundle through the engine",
    )
    parser.add_argument("--peak-tflops", type=float, help="the GPU's peak TFLOP/s for the UNet's dtype")
    args = parser.parse_args()

    cuda = torch.cuda.is_available() and not args.tiny
    device = torch.device("cuda" if cuda else "cpu")
    s = arch.FULL if cuda else arch.TINY
    batches = args.batches or ([1, 4, 8, 16, 32] if cuda else [1, 4])
    repeats = args.repeats if cuda else 1
    dtype = resolve_dtype(args.precision, device)
    where = torch.cuda.get_device_name(device) if cuda else f"CPU ({torch.get_num_threads()} threads)"
    print(
        f"device: {where}; torch {torch.__version__}; size: {'full' if cuda else 'tiny'}; "
        f"guidance {args.guidance:g}; this pipeline in {str(dtype)[6:]}, sampler {args.sampler}"
    )
    if cuda:
        torch.backends.cudnn.benchmark = True

    if not cuda and not args.no_engine_clip:
        tiny_engine_clip(args)
    models = arch.build_models(s, seed=0)
    params = sum(p.numel() for p in models["unet"].parameters())
    print(f"UNet parameters: {params / 1e6:.1f} M")
    cond = random_conditioning(s)
    loa1 = torch.randn(1, arch.LOA_TOKENS, s.lm_dim, generator=torch.Generator().manual_seed(3))

    # ---- stock diffusers pipeline, fp32, at batch 1 and at the engine's batch
    stock: dict[tuple[float, int, int], tuple[float, np.ndarray]] = {}
    if not args.no_stock:
        pipe = stock_pipeline(models, s).to(device)
        for clip in args.durations:
            for steps in args.steps:
                for batch in sorted({1, args.engine_batch}):
                    seeds = list(range(7, 7 + batch))

                    def run(steps=steps, seeds=seeds, clip=clip):
                        loa = loa1.expand(len(seeds), -1, -1).to(device)
                        return stock_call(pipe, cond, loa, seeds, steps, pass_seconds(clip), args.guidance)

                    seconds, mem, audio = measure(run, device, repeats)
                    stock[(clip, steps, batch)] = (seconds, audio)
                    print(
                        f"[stock AudioLDM2Pipeline fp32, {clip:g}-s clip ({pass_seconds(clip):g}-s pass), "
                        f"{steps} steps] batch {batch}: {seconds / batch:.2f} s/clip, "
                        f"{60 * batch / seconds:.2f} clips/min, {memory_text(mem)}"
                    )
        pipe.to("cpu")
        del pipe
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()

    # ---- this project's pipeline, with the image side resident as in the engine process
    unet = copy.deepcopy(models["unet"]).to(device=device, dtype=dtype)
    if cuda:
        unet = unet.to(memory_format=torch.channels_last)
    encoder, aligner = image_conditioning(s, device, dtype, tiny=not cuda)
    bundle = ModelBundle(
        path=Path("benchmark"),
        manifest={"components": {"encoder": {"kind": "imagebind"}}},
        version="benchmark",
        unet=unet,
        vae=models["vae"].to(device),
        vocoder=models["vocoder"].to(device),
        language_model=models["language_model"].to(device),
        scheduler_config=dict(models["scheduler"].config),
        aligner=aligner,
        encoder=encoder,
        conditioning={k: v.to(device) for k, v in cond.items()},
    )
    compiled = args.compile and cuda
    graphed = args.cuda_graphs and cuda and not compiled
    ours = Art2MusPipeline(bundle, device, sampler=args.sampler, kv_cache=not (compiled or graphed))
    if compiled:
        ours.unet = torch.compile(unet)  # the engine's mode (engine.py)
        print("UNet compiled with torch.compile (default mode, as the engine); the warm-up run compiles")
    elif graphed:
        from engine.engines.diffusion.cuda_graphs import GraphedUNet

        ours.unet = GraphedUNet(unet)
        print("UNet replayed as CUDA graphs; the warm-up run captures one graph per batch x duration")
    peak = gpu_peak_tflops(device, dtype, args.peak_tflops)

    for clip in args.durations:
        duration = pass_seconds(clip)
        flops1 = unet_flops_per_step(ours, 1, duration)
        print(
            f"UNet FLOPs per guided step at batch 1, {clip:g}-s clip ({duration:g}-s pass): "
            f"{flops1 / 1e9:.1f} GFLOP (FlopCounterMode; 2 x batch latents per call)"
        )
        for steps in args.steps:
            for batch in batches:
                seeds = list(range(7, 7 + batch))
                loa = loa1.expand(batch, -1, -1).to(device)
                unet_times: list[float] = []

                def run(loa=loa, seeds=seeds, steps=steps, unet_times=unet_times, duration=duration):
                    """Denoise and decode, timing the denoising (the UNet's share) on its own."""
                    sync(device)
                    started = time.perf_counter()
                    latents = ours.denoise(
                        loa, seeds, steps=steps, guidance_scale=args.guidance, duration=duration
                    )
                    sync(device)
                    unet_times.append(time.perf_counter() - started)
                    return ours.decode(latents, duration)

                seconds, mem, audio = measure(run, device, repeats)
                unet_seconds = statistics.median(unet_times[-repeats:])
                flops = unet_flops_per_step(ours, batch, duration) * steps
                rate = flops / unet_seconds / 1e12
                line = (
                    f"[this pipeline {str(dtype)[6:]} {args.sampler}, {clip:g}-s clip, {steps} steps] "
                    f"batch {batch}: {seconds / batch:.2f} s/clip, {60 * batch / seconds:.2f} clips/min"
                )
                if (clip, steps, 1) in stock:
                    base_seconds, reference = stock[(clip, steps, 1)]
                    line += f", {base_seconds * batch / seconds:.1f}x stock batch 1"
                    if (clip, steps, batch) in stock:
                        line += f" ({stock[(clip, steps, batch)][0] / seconds:.1f}x stock at batch {batch})"
                    n = min(reference[0].shape[-1], audio[0].shape[-1])
                    corr = np.corrcoef(reference[0][:n], audio[0][:n])[0, 1]
                    line += f", waveform corr. with stock fp32 {corr:.4f}"
                line += f"; {memory_text(mem)}; UNet {rate * 1000:.1f} GFLOP/s"
                line += (
                    f" = {100 * rate / peak:.1f}% of the GPU's peak {peak:g} TFLOP/s"
                    if peak
                    else " (no GPU peak to compare with)"
                )
                print(line)

    # ---- image conditioning (encoder + aligner + GPT-2 LoA)
    for batch in (1, max(batches)):
        images = [
            np.random.default_rng(i).integers(0, 256, (480, 640, 3), dtype=np.uint8) for i in range(batch)
        ]
        seconds, _, _ = measure(
            lambda images=images: ours.loa_embeddings(ours.image_embeddings(images)),
            device,
            repeats,
        )
        print(
            f"[image conditioning: {encoder.kind} encoder + aligner + GPT-2 LoA] batch {batch}: "
            f"{1000 * seconds / batch:.1f} ms/image"
        )


def tiny_engine_clip(args) -> None:
    """The tiny bundle, through the engine: one 10-s clip at each step count."""
    from engine.engines.diffusion.bundle import make_tiny_bundle
    from engine.engines.diffusion.engine import Art2MusEngine

    image = np.random.default_rng(0).integers(0, 256, (600, 800, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory(prefix="art2mus-bench-bundle-") as tmp:
        make_tiny_bundle(Path(tmp) / "tiny")
        for steps in args.steps:
            engine = Art2MusEngine(Path(tmp) / "tiny", steps=steps, device="cpu")
            started = time.perf_counter()
            clip = engine.generate(image, 10.0, seed=1)
            print(
                f"[tiny bundle, engine.generate on the CPU] one 10-s clip, {steps} steps: "
                f"{time.perf_counter() - started:.2f} s ({clip.audio.shape[0] / clip.sample_rate:g} s of "
                f"{clip.sample_rate} Hz stereo)"
            )


if __name__ == "__main__":
    main()
