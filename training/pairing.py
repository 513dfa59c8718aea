"""ArtSound's pairing, exact and blockwise: each audio takes its most similar unpaired image,
highest similarities first (global greedy matching on cosine similarity).

The brute-force definition sorts all N×M similarities and walks down the list, keeping a pair
when both sides are still free. ArtSound's 105,884 × 116,475 matrix is 49 GB in fp32, so it
is never formed. Instead (lazy greedy, exact):

1. every audio gets its top-``k`` images, computed in blocks of audio × blocks of images
   (one block of similarities in memory at a time);
2. a max-heap holds each unpaired audio's best candidate; popping the global maximum gives
   the next pair of the brute-force walk as long as that candidate image is still free
   (every audio's heap entry is its best among the images still free, or an upper bound of it);
3. a candidate whose image was taken is replaced by the audio's next one; an audio whose
   ``k`` candidates are all taken is pushed with its k-th similarity as an upper bound, and
   when such a bound reaches the top, all exhausted audios get a fresh top-``k`` over the
   images still free (one blockwise pass for the lot).

Ties are broken as the reference does: higher similarity, then lower audio index, then lower
image index. Similarities are computed in float32 on the device (GPU or CPU).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np


@dataclass
class PairingStats:
    refills: int = 0  # blockwise top-k passes after the first
    pops: int = 0


def _normalise(x):
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _topk_blockwise(audio, images, rows, free_mask, k, audio_block, image_block):
    """Top-k free images for the audio rows ``rows``: (values, indices) on the CPU, sorted
    by similarity descending and, for ties, image index ascending."""
    import torch

    values_out, index_out = [], []
    n_images = images.shape[0]
    for a0 in range(0, len(rows), audio_block):
        a = audio[rows[a0 : a0 + audio_block]]
        best_v = torch.full((a.shape[0], 0), float("-inf"), device=a.device)
        best_i = torch.zeros((a.shape[0], 0), dtype=torch.long, device=a.device)
        for i0 in range(0, n_images, image_block):
            sims = a @ images[i0 : i0 + image_block].T
            sims.masked_fill_(~free_mask[i0 : i0 + image_block][None, :], float("-inf"))
            kk = min(k, sims.shape[1])
            v, i = torch.topk(sims, kk, dim=1, sorted=False)
            best_v = torch.cat([best_v, v], 1)
            best_i = torch.cat([best_i, i + i0], 1)
            if best_v.shape[1] > k:
                # stable order: index ascending then value descending keeps ties by index
                order = torch.argsort(best_i, dim=1, stable=True)
                best_v, best_i = best_v.gather(1, order), best_i.gather(1, order)
                order = torch.argsort(-best_v, dim=1, stable=True)[:, :k]
                best_v, best_i = best_v.gather(1, order), best_i.gather(1, order)
        order = torch.argsort(best_i, dim=1, stable=True)
        best_v, best_i = best_v.gather(1, order), best_i.gather(1, order)
        order = torch.argsort(-best_v, dim=1, stable=True)
        values_out.append(best_v.gather(1, order).cpu())
        index_out.append(best_i.gather(1, order).cpu())
    return torch.cat(values_out).numpy(), torch.cat(index_out).numpy()


def greedy_pairs(
    audio_embeds,
    image_embeds,
    *,
    k: int = 32,
    audio_block: int = 4096,
    image_block: int = 16384,
    device: str = "cpu",
    stats: PairingStats | None = None,
) -> np.ndarray:
    """``pairs[a]`` = the image index audio ``a`` is paired with (−1 when images ran out)."""
    import torch

    stats = stats if stats is not None else PairingStats()
    audio = _normalise(torch.as_tensor(audio_embeds, dtype=torch.float32).to(device))
    images = _normalise(torch.as_tensor(image_embeds, dtype=torch.float32).to(device))
    n_audio, n_images = audio.shape[0], images.shape[0]
    free = torch.ones(n_images, dtype=torch.bool, device=device)
    free_np = np.ones(n_images, dtype=bool)
    result = np.full(n_audio, -1, dtype=np.int64)
    k = max(1, min(k, n_images))

    values, indices = _topk_blockwise(audio, images, list(range(n_audio)), free, k, audio_block, image_block)
    cand_v = list(values)
    cand_i = list(indices)
    pos = np.zeros(n_audio, dtype=np.int64)
    # heap entries: (-similarity, audio, image or -1 for "exhausted, value is a bound")
    heap: list[tuple[float, int, int]] = [
        (-float(cand_v[a][0]), a, int(cand_i[a][0])) for a in range(n_audio)
    ]
    heapq.heapify(heap)
    exhausted: set[int] = set()
    remaining = min(n_audio, n_images)

    while heap and remaining:
        _neg, a, img = heapq.heappop(heap)
        stats.pops += 1
        if result[a] >= 0:
            continue
        if img < 0:
            if a not in exhausted:
                continue  # a stale bound: this audio was refreshed by an earlier pass
            # An upper bound reached the top: refresh every exhausted audio in one pass.
            rows = sorted(exhausted)
            exhausted.clear()
            stats.refills += 1
            v, i = _topk_blockwise(audio, images, rows, free, k, audio_block, image_block)
            for r, row in enumerate(rows):
                cand_v[row], cand_i[row], pos[row] = v[r], i[r], 0
                if np.isfinite(v[r][0]):
                    heapq.heappush(heap, (-float(v[r][0]), row, int(i[r][0])))
            continue
        if free_np[img]:
            result[a] = img
            free_np[img] = False
            free[img] = False
            remaining -= 1
            continue
        # The candidate was taken: move to this audio's next free candidate.
        p = pos[a] + 1
        while p < len(cand_i[a]) and not free_np[cand_i[a][p]]:
            p += 1
        pos[a] = p
        if p < len(cand_i[a]) and np.isfinite(cand_v[a][p]):
            heapq.heappush(heap, (-float(cand_v[a][p]), a, int(cand_i[a][p])))
        else:
            exhausted.add(a)
            heapq.heappush(heap, (-float(cand_v[a][-1]), a, -1))
    return result


def greedy_pairs_reference(audio_embeds, image_embeds) -> np.ndarray:
    """The definition, with the whole matrix (for tests on small inputs)."""
    import torch

    audio = _normalise(torch.as_tensor(audio_embeds, dtype=torch.float32))
    images = _normalise(torch.as_tensor(image_embeds, dtype=torch.float32))
    sims = (audio @ images.T).numpy()
    n_audio, n_images = sims.shape
    a_idx, i_idx = np.meshgrid(np.arange(n_audio), np.arange(n_images), indexing="ij")
    order = np.lexsort((i_idx.ravel(), a_idx.ravel(), -sims.ravel()))
    result = np.full(n_audio, -1, dtype=np.int64)
    used = np.zeros(n_images, dtype=bool)
    for flat in order:
        a, i = divmod(int(flat), n_images)
        if result[a] < 0 and not used[i]:
            result[a], used[i] = i, True
    return result
