"""Precompute: image embeddings and VAE latent distributions, once, into sharded safetensors.

Epochs then touch neither the vision encoder nor the VAE (they are frozen, so their outputs
never change). Layout of ``DIR``::

    shards/shard-00000.safetensors   image_embeds (n, dim), latent_mean and latent_std
                                     (n, 8, T, F), metadata: the n pair keys (JSON)
    index.json                       shards with their sha256, counts, skipped pairs and why,
                                     the bundle's model version, crop length
    split/{train,test,val}.txt       the split of the pairs that were kept (see split.py)

The VAE posterior's mean and standard deviation are stored rather than one sample, so that
training draws a fresh latent each time, as AudioLDM 2's own training does.

Resumable: shard ``i`` always holds pairs ``[i·S, (i+1)·S)`` of the table, each shard is
written to a temporary name and renamed, and a rerun skips the shards that exist.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .data import CROP_SECONDS, Pair, SkipReason, audio_to_mel, load_image, read_pairs
from .split import make_split, write_split

INDEX = "index.json"
SHARDS = "shards"


@dataclass
class PrepareReport:
    kept: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # key -> reason
    shards_done_before: int = 0


def _shard_name(i: int) -> str:
    return f"shard-{i:05d}.safetensors"


def _encode_shard(bundle, pairs: list[Pair], seconds: float, batch: int) -> tuple[dict, list[str], dict]:
    import torch

    keys: list[str] = []
    embeds, means, stds = [], [], []
    skipped: dict[str, str] = {}
    for b0 in range(0, len(pairs), batch):
        images, mels, batch_keys = [], [], []
        for pair in pairs[b0 : b0 + batch]:
            try:
                image = load_image(pair.image)
            except (ValueError, OSError) as exc:
                skipped[pair.key] = f"{SkipReason.IMAGE_UNREADABLE}: {exc}"
                continue
            try:
                mel = audio_to_mel(pair.audio, seconds)
            except (ValueError, OSError) as exc:
                reason = SkipReason.AUDIO_SILENT if "silent" in str(exc) else SkipReason.AUDIO_UNREADABLE
                skipped[pair.key] = f"{reason}: {exc}"
                continue
            images.append(image)
            mels.append(mel)
            batch_keys.append(pair.key)
        if not batch_keys:
            continue
        with torch.no_grad():
            embeds.append(bundle.encoder.encode(images).float().cpu())
            vae = bundle.vae
            mel = torch.stack(mels)[:, None].to(next(vae.parameters()).device)
            dist = vae.encode(mel).latent_dist
            means.append(dist.mean.float().cpu())
            stds.append(dist.std.float().cpu())
        keys += batch_keys
    if keys:
        tensors = {
            "image_embeds": torch.cat(embeds).contiguous(),
            "latent_mean": torch.cat(means).contiguous(),
            "latent_std": torch.cat(stds).contiguous(),
        }
    else:
        tensors = {}
    return tensors, keys, skipped


def _shard_meta(path: Path) -> tuple[list[str], dict[str, str]]:
    """The pair keys a shard holds (in row order) and the pairs of its range that were skipped."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads(fh.metadata()["art2mus"])
    return meta["keys"], meta["skipped"]


def prepare(
    pairs_csv: str | os.PathLike,
    bundle_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    shard_size: int = 256,
    batch: int = 16,
    seconds: float = CROP_SECONDS,
    split_seed: int = 0,
    val_count: int = 100,
    device: str = "cpu",
    progress: bool = True,
) -> PrepareReport:
    from safetensors.torch import save_file
    from tqdm import tqdm

    from engine.engines.diffusion.bundle import load_bundle
    from engine.hashing import sha256_file

    out = Path(out)
    (out / SHARDS).mkdir(parents=True, exist_ok=True)
    pairs = read_pairs(pairs_csv)
    bundle = load_bundle(bundle_path, device=device)
    n_shards = (len(pairs) + shard_size - 1) // shard_size
    report = PrepareReport()
    shard_info: list[dict[str, Any]] = []
    bar = tqdm(total=len(pairs), desc="prepare", unit="pair", disable=not progress, file=sys.stderr)
    for i in range(n_shards):
        chunk = pairs[i * shard_size : (i + 1) * shard_size]
        path = out / SHARDS / _shard_name(i)
        if path.is_file():
            report.shards_done_before += 1
        else:
            tensors, keys, skipped = _encode_shard(bundle, chunk, seconds, batch)
            tmp = path.with_name(path.name + ".partial")
            # One metadata entry: safetensors writes its metadata map in no fixed order, and a
            # rerun must give a byte-identical shard (its sha256 is in index.json).
            meta = {"art2mus": json.dumps({"keys": keys, "skipped": skipped}, sort_keys=True)}
            save_file(tensors, str(tmp), metadata=meta)
            os.replace(tmp, path)
        keys, skipped = _shard_meta(path)
        report.kept += len(keys)
        report.skipped.update(skipped)
        shard_info.append({"file": f"{SHARDS}/{path.name}", "count": len(keys), "sha256": sha256_file(path)})
        bar.update(len(chunk))
    bar.close()

    kept = set()
    for info in shard_info:
        kept.update(_shard_meta(out / info["file"])[0])
    split = make_split([p for p in pairs if p.key in kept], val_count=val_count, seed=split_seed)
    write_split(split, out / "split")
    index = {
        "format": "art2mus-training-data",
        "version": 1,
        "pairs": str(Path(pairs_csv).resolve()),
        "model_version": bundle.version,
        "encoder": {"kind": bundle.encoder_kind, "dim": int(bundle.encoder.dim)},
        "crop_seconds": seconds,
        "kept": report.kept,
        "skipped": report.skipped,
        "shards": shard_info,
    }
    (out / INDEX).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return report


def data_hash(folder: str | os.PathLike) -> str:
    """sha256 of the data's ``index.json`` (which lists every shard's sha256) and split files."""
    import hashlib

    folder = Path(folder)
    h = hashlib.sha256((folder / INDEX).read_bytes())
    for name in ("train", "test", "val"):
        h.update((folder / "split" / f"{name}.txt").read_bytes())
    return h.hexdigest()


class PrecomputedData:
    """The precomputed pairs of one split part, in the split file's order.

    Image embeddings (4 KB a pair) are held in memory; the latents (256 KB a 10-s pair: 27 GB
    for ArtSound) stay in the memory-mapped shards and are read per batch, so several training
    processes on one machine share them through the page cache instead of each holding a copy.
    """

    def __init__(self, folder: str | os.PathLike, keys: list[str]):
        import torch
        from safetensors import safe_open

        folder = Path(folder)
        index = json.loads((folder / INDEX).read_text(encoding="utf-8"))
        wanted = set(keys)
        where: dict[str, tuple[int, int]] = {}
        embeds: dict[str, Any] = {}
        self._shards: list[Any] = []
        for info in index["shards"]:
            if not info["count"]:
                continue
            path = folder / info["file"]
            shard_keys = _shard_meta(path)[0]
            if not wanted.intersection(shard_keys):
                continue
            handle = safe_open(str(path), framework="pt")
            self._shards.append(handle)
            shard_embeds = handle.get_tensor("image_embeds")
            for r, key in enumerate(shard_keys):
                if key in wanted:
                    where[key] = (len(self._shards) - 1, r)
                    embeds[key] = shard_embeds[r]
        missing = [k for k in keys if k not in where]
        if missing:
            raise KeyError(f"{folder}: {len(missing)} split key(s) not in the shards, e.g. {missing[0]!r}")
        self.keys = list(keys)
        self._where = [where[k] for k in keys]
        self.image_embeds = torch.stack([embeds[k] for k in keys]) if keys else torch.zeros(0)
        self.latent_shape: tuple[int, ...] = (
            tuple(self._shards[0].get_slice("latent_mean").get_shape()[1:]) if keys else ()
        )
        self.index = index

    def latents(self, rows) -> tuple[Any, Any]:
        """(mean, std) of the VAE posterior for the given row numbers, each (n, C, T, F)."""
        import torch

        means, stds = [], []
        for row in rows.tolist() if hasattr(rows, "tolist") else rows:
            shard, r = self._where[int(row)]
            handle = self._shards[shard]
            means.append(handle.get_slice("latent_mean")[r : r + 1])
            stds.append(handle.get_slice("latent_std")[r : r + 1])
        return torch.cat(means), torch.cat(stds)

    def __len__(self) -> int:
        return len(self.keys)
