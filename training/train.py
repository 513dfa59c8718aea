"""Train the Image Aligner. Read it top to bottom, like nanoGPT's train.py.

    art2mus train run --data DIR --model BUNDLE --out RUN [--config FILE] [overrides]
    accelerate launch -m training.train --data DIR --model BUNDLE --out RUN ...   (GPUs, nodes)

Only the aligner learns; UNet, GPT-2, VAE and encoder come frozen from ``BUNDLE`` (its aligner
is ignored: a fresh one with the same shape is initialised from the seed). Latents and image
embeddings come precomputed from ``DIR`` (``art2mus train prepare``).

Exact resume by construction: which samples form step s's batch, and the timesteps and noise
drawn for them, are functions of (seed, s) only, drawn for the *global* batch and cut into
chunks (micro-step m of process r takes chunk m·processes + r). So a checkpoint needs only
the aligner, AdamW's state, the LR schedule's position and the step, and two processes with
half the batch each, or one with two accumulation micro-steps, compute the same global batch
as one process (DDP averages the gradients of the processes).

Outputs in ``RUN``: ``metrics.csv`` (step, loss, lr, val_loss every --val-every steps, …),
``checkpoint/state.pt`` (resume), ``aligner/`` (the latest weights, for export) and
``run.json`` (config, bundle, data hash).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

METRIC_FIELDS = ["step", "epoch", "loss", "lr", "val_loss", "samples_per_s", "elapsed_s"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="training.train", description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="precomputed data folder (art2mus train prepare)")
    p.add_argument("--model", required=True, help="model bundle with the frozen parts")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--config", help="TOML file with training settings")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--batch-size", type=int, help="global batch size")
    p.add_argument("--grad-accum", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--warmup", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--val-every", type=int)
    p.add_argument("--log-every", type=int)
    p.add_argument("--save-every", type=int)
    p.add_argument("--precision", choices=["auto", "no", "bf16", "fp16"])
    p.add_argument("--gradient-checkpointing", action="store_true", default=None)
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint")
    p.add_argument("--quiet", action="store_true")
    return p.parse_args(argv)


def lr_factor(step: int, warmup: int, max_steps: int, schedule: str) -> float:
    """Linear warm-up to the full rate, then constant or cosine decay."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "cosine":
        progress = (step - warmup) / max(1, max_steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return 1.0


def main(argv: list[str] | None = None) -> dict:
    import torch
    from accelerate import Accelerator  # type: ignore[import-untyped]

    from engine.engines.diffusion.aligner import ImageAligner
    from engine.engines.diffusion.bundle import load_bundle

    from .config import Precision, load_config
    from .grad_checkpoint import enable_checkpointing
    from .objective import alphas_cumprod, weighted_loss
    from .prepare import PrecomputedData, data_hash
    from .split import read_split

    # ------------------------------------------------------------------ config
    args = parse_args(argv)
    overrides = {
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "grad_accum": args.grad_accum,
        "lr": args.lr,
        "warmup": args.warmup,
        "seed": args.seed,
        "val_every": args.val_every,
        "log_every": args.log_every,
        "save_every": args.save_every,
        "precision": args.precision,
        "gradient_checkpointing": args.gradient_checkpointing,
    }
    cfg = load_config(args.config, overrides)
    out = Path(args.out)

    # ------------------------------------------------------------------ processes
    precision = Precision(cfg.precision)
    if precision is Precision.AUTO:
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        precision = Precision.BF16 if bf16 else Precision.FP32
    accelerator = Accelerator(mixed_precision=precision.value)
    world, rank = accelerator.num_processes, accelerator.process_index
    device = accelerator.device
    if cfg.batch_size % (world * cfg.grad_accum):
        raise SystemExit(
            f"batch_size {cfg.batch_size} must be divisible by processes ({world}) × grad_accum ({cfg.grad_accum})"
        )
    per_proc = cfg.batch_size // (world * cfg.grad_accum)  # samples per process per micro-step
    say = (lambda *a: None) if (args.quiet or not accelerator.is_main_process) else print

    # ------------------------------------------------------------------ model
    bundle = load_bundle(args.model, device=str(device))  # everything frozen and in eval()
    if cfg.gradient_checkpointing:
        enable_checkpointing(bundle.unet)
    shape = {k: bundle.aligner.config[k] for k in ("input_dim", "embed_dim", "num_tokens", "token_dim")}
    torch.manual_seed(cfg.seed)
    aligner = ImageAligner(**shape).to(device)
    aligner.requires_grad_(True).train()  # the only module that learns
    alphas = alphas_cumprod(bundle.scheduler_config).to(device)
    scaling = float(bundle.vae.config.scaling_factor)

    # ------------------------------------------------------------------ data
    split = read_split(Path(args.data) / "split")
    train = PrecomputedData(args.data, split.train)
    val = PrecomputedData(args.data, split.val)
    n_train = len(train)
    if n_train == 0:
        raise SystemExit(f"{args.data}: no training pairs")
    perms: dict[int, torch.Tensor] = {}

    def sample_indices(position: int, count: int) -> torch.Tensor:
        """Items at positions [position, position+count) of the endless, per-epoch shuffled stream."""
        out_idx = []
        for p in range(position, position + count):
            epoch, offset = divmod(p, n_train)
            if epoch not in perms:
                g = torch.Generator().manual_seed(_seed_for("order", cfg.seed, epoch))
                perms[epoch] = torch.randperm(n_train, generator=g)
                perms.pop(epoch - 2, None)
            out_idx.append(int(perms[epoch][offset]))
        return torch.tensor(out_idx)

    drawn: dict[int, tuple] = {}

    def step_draw(step: int) -> tuple:
        """The whole global batch of a step: items, timesteps, latent and diffusion noise.

        Drawn on the CPU from a generator seeded by (seed, step) alone, so every process, any
        process count, any accumulation and a resumed run all see the same global batch.
        """
        if step not in drawn:
            drawn.clear()
            idx = sample_indices(step * cfg.batch_size, cfg.batch_size)
            g = torch.Generator().manual_seed(_seed_for("noise", cfg.seed, step))
            shape_lat = (cfg.batch_size, *train.latent_shape)
            timesteps = torch.randint(0, alphas.shape[0], (cfg.batch_size,), generator=g)
            eps_latent = torch.randn(shape_lat, generator=g)
            noise = torch.randn(shape_lat, generator=g)
            drawn[step] = (idx, timesteps, eps_latent, noise)
        return drawn[step]

    def global_batch(step: int, micro: int):
        """This process's chunk of the step's global batch: chunk micro·processes + rank."""
        idx, timesteps, eps_latent, noise = step_draw(step)
        chunk = micro * world + rank
        mine = slice(chunk * per_proc, (chunk + 1) * per_proc)
        idx = idx[mine]
        mean, std = train.latents(idx)
        latents = (mean + std * eps_latent[mine]) * scaling
        return (
            train.image_embeds[idx].to(device),
            latents.to(device),
            noise[mine].to(device),
            timesteps[mine].to(device),
        )

    # Fixed validation set: the latents' means, and timesteps and noise from val_seed alone.
    gv = torch.Generator().manual_seed(cfg.val_seed)
    val_t = torch.randint(0, alphas.shape[0], (len(val),), generator=gv)
    val_noise = torch.randn((len(val), *train.latent_shape), generator=gv)
    val_latents = val.latents(range(len(val)))[0] * scaling if len(val) else torch.zeros(0)  # posterior means

    def validation_loss() -> float:
        model = accelerator.unwrap_model(aligner)
        model.eval()
        total = 0.0
        with torch.no_grad(), accelerator.autocast():
            for b0 in range(0, len(val), max(1, per_proc)):
                sl = slice(b0, b0 + max(1, per_proc))
                losses = weighted_loss(
                    bundle,
                    model,
                    alphas,
                    val.image_embeds[sl].to(device),
                    val_latents[sl].to(device),
                    val_noise[sl].to(device),
                    val_t[sl].to(device),
                    gamma=cfg.min_snr_gamma,
                    reduce=False,
                )
                total += float(losses.float().sum())
        model.train()
        return total / max(1, len(val))

    # ------------------------------------------------------------------ optimizer
    optimizer = torch.optim.AdamW(
        aligner.parameters(),
        lr=cfg.lr,
        betas=(cfg.adam_beta1, cfg.adam_beta2),
        eps=cfg.adam_eps,
        weight_decay=cfg.weight_decay,
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, cfg.warmup, cfg.max_steps, cfg.lr_schedule)
    )
    aligner, optimizer = accelerator.prepare(aligner, optimizer)

    # ------------------------------------------------------------------ resume
    step = 0
    state_path = out / "checkpoint" / "state.pt"
    if args.resume:
        if not state_path.is_file():
            raise SystemExit(f"{state_path}: no checkpoint to resume from")
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        accelerator.unwrap_model(aligner).load_state_dict(state["aligner"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        step = int(state["step"])
        say(f"resumed from {state_path} at step {step}")
    elif state_path.is_file():
        raise SystemExit(f"{out}: holds a run already; pass --resume or choose a new --out")

    rows: list[dict] = []
    metrics_path = out / "metrics.csv"
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        if args.resume and metrics_path.is_file():
            with metrics_path.open(newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= step]
        run_info = {
            "config": vars(cfg),
            "model": str(Path(args.model).resolve()),
            "model_version": bundle.version,
            "data": str(Path(args.data).resolve()),
            "data_hash": data_hash(args.data),
            "processes": world,
            "precision": precision.value,
        }
        (out / "run.json").write_text(json.dumps(run_info, indent=2, sort_keys=True) + "\n")

    def write_metrics() -> None:
        tmp = metrics_path.with_suffix(".csv.partial")
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=METRIC_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, metrics_path)

    def save_checkpoint() -> None:
        if accelerator.is_main_process:
            model = accelerator.unwrap_model(aligner)
            state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = state_path.with_suffix(".pt.partial")
            torch.save(
                {
                    "aligner": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "step": step,
                    "config": vars(cfg),
                },
                tmp,
            )
            os.replace(tmp, state_path)
            model.save_pretrained(out / "aligner", safe_serialization=True)
            write_metrics()
        accelerator.wait_for_everyone()

    # ------------------------------------------------------------------ loop
    say(
        f"training {n_train} pairs, {len(val)} validation; {world} process(es) × {per_proc} × {cfg.grad_accum}"
    )
    t0 = time.time()
    last_time, last_step = t0, step
    if step == 0 and len(val) and accelerator.is_main_process:
        # The untrained aligner's validation loss: the baseline every later row compares with.
        row = {"step": 0, "epoch": "0", "loss": "", "lr": f"{schedule.get_last_lr()[0]:.8g}"}
        rows.append({**row, "val_loss": f"{validation_loss():.8g}", "samples_per_s": "", "elapsed_s": "0"})
        write_metrics()
    while step < cfg.max_steps:
        loss_sum = torch.zeros((), device=device)
        for micro in range(cfg.grad_accum):
            image_embeds, latents, noise, timesteps = global_batch(step, micro)
            sync = micro == cfg.grad_accum - 1
            ctx = accelerator.no_sync(aligner) if not sync and world > 1 else _nullcontext()
            with ctx, accelerator.autocast():
                loss = weighted_loss(
                    bundle, aligner, alphas, image_embeds, latents, noise, timesteps, gamma=cfg.min_snr_gamma
                )
                accelerator.backward(loss / cfg.grad_accum)
            loss_sum += loss.detach() / cfg.grad_accum
        if cfg.max_grad_norm > 0:
            accelerator.clip_grad_norm_(aligner.parameters(), cfg.max_grad_norm)
        lr = schedule.get_last_lr()[0]
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1

        # Only on multiples of val_every (not also at the last step), so a run stopped and resumed
        # logs exactly the rows of an uninterrupted one.
        at_val = step % cfg.val_every == 0
        if step % cfg.log_every == 0 or at_val:
            # Reduced (a collective: every process takes this branch) and read back only when
            # logged, so the GPU is not synchronised every step.
            train_loss = float(accelerator.reduce(loss_sum, reduction="mean"))
            now = time.time()  # before validation, so samples_per_s counts training only
            rate = (step - last_step) * cfg.batch_size / max(now - last_time, 1e-9)
            val_loss = ""
            if at_val and len(val) and accelerator.is_main_process:
                val_loss = f"{validation_loss():.8g}"
            last_time, last_step = time.time(), step
            rows.append(
                {
                    "step": step,
                    "epoch": f"{step * cfg.batch_size / n_train:.4f}",
                    "loss": f"{train_loss:.8g}",
                    "lr": f"{lr:.8g}",
                    "val_loss": val_loss,
                    "samples_per_s": f"{rate:.3f}",
                    "elapsed_s": f"{now - t0:.2f}",
                }
            )
            say(f"step {step}: loss {train_loss:.5f} lr {lr:.3g}" + (f" val {val_loss}" if val_loss else ""))
            if accelerator.is_main_process:
                write_metrics()
        if step % cfg.save_every == 0 or step == cfg.max_steps:
            save_checkpoint()

    accelerator.wait_for_everyone()
    result = {"step": step, "rows": rows, "seconds": time.time() - t0}
    accelerator.end_training()
    return result


def _seed_for(purpose: str, seed: int, index: int) -> int:
    """A 63-bit generator seed for (purpose, seed, index): distinct streams never collide."""
    import hashlib

    digest = hashlib.sha256(f"{purpose}:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main(sys.argv[1:])
