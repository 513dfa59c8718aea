"""How far the faster samplers' clips land from DDIM-200's, on a fixed set of artworks.

    python benchmarks/sampler_distance.py --tiny                     # tiny random bundle, CPU
    python benchmarks/sampler_distance.py --model BUNDLE [--device cuda] [--images 8]

For each artwork of the fixed set (the demo paintings in content/demo, in name order, each with
the seed the engine would give it) every sampler runs from the same image conditioning and the
same initial noise. The distance is the mean absolute difference of AudioLDM 2's log-mel
spectrograms (training/data.py: 64 mels, 10-ms hop, natural log) between a sampler's clip and
the DDIM-200 clip, averaged over the set. Two yardsticks are printed with it:

- DDIM-200 with another seed: the distance between two different clips of the same artwork,
  what "unrelated" looks like;
- DDIM-50: the engine's usual cheaper setting.

A sampler whose distance is far below the other-seed figure makes nearly the same clip as
DDIM-200. With random weights (``--tiny``) the figures only show that the measurement runs;
they mean something with a real bundle (e.g. the authors' weights, see docs/art2mus-engine.md).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.engines.diffusion.bundle import load_bundle, make_tiny_bundle
from engine.engines.diffusion.pipeline import Art2MusPipeline
from engine.engines.diffusion.samplers import Sampler
from training.data import mel_spectrogram, normalize_wav

#: (sampler, steps) compared with DDIM-200.
CANDIDATES = [
    (Sampler.DDIM, 50),
    (Sampler.DPM_SOLVER, 25),
    (Sampler.DPM_SOLVER, 50),
    (Sampler.UNIPC, 25),
    (Sampler.UNIPC, 50),
]
REFERENCE = (Sampler.DDIM, 200)


def demo_images(count: int) -> list[np.ndarray]:
    from PIL import Image

    files = sorted((ROOT / "content" / "demo").glob("*.png"))[:count]
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def log_mels(waves: np.ndarray) -> list[torch.Tensor]:
    return [mel_spectrogram(normalize_wav(w)) for w in waves]


def distance(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return float(np.mean([(x - y).abs().mean().item() for x, y in zip(a, b, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny random bundle on the CPU")
    parser.add_argument("--model", type=Path, help="a model bundle folder")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=4, help="artworks in the fixed set (demo paintings)")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--guidance", type=float, default=3.5)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    if not args.tiny and args.model is None:
        parser.error("give --model BUNDLE or --tiny")

    with tempfile.TemporaryDirectory(prefix="art2mus-sampler-bench-") as tmp:
        folder = args.model
        if args.tiny:
            folder = Path(tmp) / "tiny"
            make_tiny_bundle(folder, encoder_kind="imagebind")
            args.device = "cpu"
        bundle = load_bundle(folder, device=args.device)
        images = demo_images(args.images)
        seeds = list(range(1, len(images) + 1))
        base = Art2MusPipeline(bundle, args.device)
        loa = base.loa_embeddings(base.image_embeddings(images))
        print(
            f"bundle {folder} ({'tiny random' if args.tiny else bundle.version[:12]}) on {args.device}; "
            f"{len(images)} demo paintings, {args.duration:g}-s clips, guidance {args.guidance:g}"
        )

        def run(sampler: Sampler, steps: int, seed_offset: int = 0) -> tuple[list[torch.Tensor], float]:
            pipeline = Art2MusPipeline(bundle, args.device, sampler=sampler)
            started = time.perf_counter()
            waves = pipeline.generate_from_loa(
                loa,
                [s + seed_offset for s in seeds],
                steps=steps,
                guidance_scale=args.guidance,
                duration=args.duration,
                batch_size=args.batch,
            )
            return log_mels(waves), (time.perf_counter() - started) / len(seeds)

        reference, ref_seconds = run(*REFERENCE)
        other_seed, _ = run(*REFERENCE, seed_offset=1000)
        print(f"{'sampler':<14}{'steps':>6}{'s/clip':>9}{'log-mel distance to DDIM-200':>31}")
        print(f"{'ddim':<14}{200:>6}{ref_seconds:>9.2f}{0.0:>31.3f}")
        for sampler, steps in CANDIDATES:
            mels, seconds = run(sampler, steps)
            print(f"{sampler.value:<14}{steps:>6}{seconds:>9.2f}{distance(mels, reference):>31.3f}")
        print(
            f"{'ddim, other seed':<14}{200:>6}{'':>9}{distance(other_seed, reference):>31.3f}"
            "   (two different clips: the scale of 'unrelated')"
        )


if __name__ == "__main__":
    main()
