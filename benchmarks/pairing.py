"""ArtSound pairing time: exact blockwise greedy pairing of random 1024-d embeddings.

    python benchmarks/pairing.py                 # CUDA: ArtSound's size, 105,884 audio × 116,475 images
    python benchmarks/pairing.py --scale 0.1     # a tenth of it (automatic on a CPU)
    python benchmarks/pairing.py --scale 0.01 --check   # also compare with the brute-force definition

Random Gaussian embeddings are a hard case for the lazy greedy (no structure: many audio lose
their top-k candidates to others and need a refill pass); real ImageBind embeddings cluster.
Memory: one (audio block × image block) similarity tile at a time, plus the top-k lists.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from training.pairing import PairingStats, greedy_pairs, greedy_pairs_reference

N_AUDIO, N_IMAGES, DIM = 105_884, 116_475, 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scale", type=float, default=None)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--audio-block", type=int, default=4096)
    p.add_argument("--image-block", type=int, default=16384)
    p.add_argument("--check", action="store_true")
    args = p.parse_args()
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    scale = args.scale or (1.0 if cuda else 0.1)
    n_audio, n_images = int(N_AUDIO * scale), int(N_IMAGES * scale)
    g = torch.Generator().manual_seed(0)
    audio = torch.randn(n_audio, DIM, generator=g)
    images = torch.randn(n_images, DIM, generator=g)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    stats = PairingStats()
    t0 = time.perf_counter()
    result = greedy_pairs(
        audio,
        images,
        k=args.k,
        audio_block=args.audio_block,
        image_block=args.image_block,
        device=device,
        stats=stats,
    )
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    name = torch.cuda.get_device_name() if cuda else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; {n_audio:,} audio × {n_images:,} images × {DIM}-d (scale {scale:g})")
    print(
        f"pairing: {elapsed:.1f} s; {int((result >= 0).sum()):,} pairs; k={args.k}; {stats.refills} refill passes"
    )
    if cuda:
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    if args.check:
        same = np.array_equal(result, greedy_pairs_reference(audio.numpy(), images.numpy()))
        print(f"equal to the brute-force definition: {same}")


if __name__ == "__main__":
    main()
