"""``art2mus train evaluate RUN``: generate the validation clips and score them.

For each validation artwork (``DATA/split/val.txt``) the run's aligner, in the run's base
bundle, generates a clip as the paper's validation does (10 s, 200 DDIM steps, negative
prompt "Low quality" through the bundle's stored negative conditioning, guidance 3.5:
AudioLDM 2's default, since the paper does not state one). The clips are written to
``RUN/eval/`` and the scores to ``RUN/eval.json``:

* FAD between the ground-truth crops and the generated clips, through the configured audio
  embedder (``--embedder``): ``vggish:PATH`` (torchvggish weights, the paper's choice, no PCA),
  ``melstats`` (mean and standard deviation of the AudioLDM 2 log-mel per band: a cheap,
  weight-free embedder, not comparable with published FADs), or ``vggish-random:SEED``
  (full-size VGGish with random weights, for tests only);
* KL as the authors define it (``metrics.kl_db_spectrum_paper``);
* the ImageBind score needs ImageBind's audio tower, which this project does not have yet:
  it is reported as ``null`` with that reason rather than computed with something else.
"""

from __future__ import annotations

import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class EmbedderKind(StrEnum):
    VGGISH = "vggish"
    VGGISH_RANDOM = "vggish-random"
    MEL_STATS = "melstats"


class AudioEmbedder(Protocol):
    name: str

    def embed(self, waves: list[np.ndarray], sample_rate: int) -> np.ndarray: ...


class MelStatsEmbedder:
    name = EmbedderKind.MEL_STATS.value

    def embed(self, waves: list[np.ndarray], sample_rate: int) -> np.ndarray:
        from engine.audio_utils import resample

        from .data import SAMPLE_RATE, mel_spectrogram, normalize_wav

        rows = []
        for w in waves:
            w = (
                resample(np.asarray(w, np.float32), sample_rate, SAMPLE_RATE)
                if sample_rate != SAMPLE_RATE
                else w
            )
            mel = mel_spectrogram(normalize_wav(np.asarray(w, np.float32))).numpy()
            rows.append(np.concatenate([mel.mean(axis=0), mel.std(axis=0)]))
        return np.stack(rows)


def make_embedder(spec: str, device: str = "cpu") -> AudioEmbedder:
    """``vggish:PATH``, ``vggish-random:SEED`` or ``melstats``."""
    kind, _, arg = spec.partition(":")
    try:
        which = EmbedderKind(kind)
    except ValueError:
        raise ValueError(
            f"--embedder {spec!r}: expected one of vggish:PATH, vggish-random:SEED, melstats"
        ) from None
    if which is EmbedderKind.MEL_STATS:
        return MelStatsEmbedder()
    import torch

    from .vggish import VGGishEmbedder

    if which is EmbedderKind.VGGISH:
        if not arg or not Path(arg).is_file():
            raise ValueError(f"--embedder {spec!r}: VGGish weights file not found (torchvggish vggish-*.pth)")
        return VGGishEmbedder(arg, device=device)
    torch.manual_seed(int(arg or 0))
    return VGGishEmbedder(None, device=device)


def evaluate_run(
    run: str | os.PathLike,
    *,
    embedder: str = "melstats",
    steps: int = 200,
    guidance_scale: float = 3.5,
    seconds: float = 10.0,
    limit: int | None = None,
    seed: int = 0,
    batch_size: int = 4,
    device: str = "cpu",
    imagebind_audio: str | os.PathLike | None = None,
) -> dict[str, Any]:
    import soundfile as sf

    from engine.engines.diffusion.aligner import ImageAligner
    from engine.engines.diffusion.bundle import load_bundle
    from engine.engines.diffusion.pipeline import Art2MusPipeline

    from .data import SAMPLE_RATE, centre_crop, load_audio, load_image, read_pairs
    from .metrics import fad, kl_db_spectrum_paper
    from .prepare import INDEX
    from .split import read_split

    run = Path(run)
    info = json.loads((run / "run.json").read_text())
    data = Path(info["data"])
    index = json.loads((data / INDEX).read_text())
    pairs = {p.key: p for p in read_pairs(index["pairs"])}
    keys = read_split(data / "split").val[: limit or None]
    if len(keys) < 2:
        raise ValueError(f"{data}: FAD needs at least two validation pairs, found {len(keys)}")
    audio_embedder = make_embedder(embedder, device)

    bundle = load_bundle(info["model"], device=device)
    bundle.aligner = ImageAligner.from_pretrained(run / "aligner").to(device).eval().requires_grad_(False)
    pipe = Art2MusPipeline(bundle, device=device)
    images = [load_image(pairs[k].image) for k in keys]
    truth = [centre_crop(load_audio(pairs[k].audio), seconds) for k in keys]
    generated = pipe.generate(
        images,
        [seed + i for i in range(len(keys))],
        steps=steps,
        guidance_scale=guidance_scale,
        duration=seconds,
        batch_size=batch_size,
    )
    (run / "eval").mkdir(exist_ok=True)
    for key, wave in zip(keys, generated, strict=True):
        sf.write(run / "eval" / f"{key}.wav", wave, pipe.sample_rate)
    gen = [np.asarray(w) for w in generated]
    emb_truth = audio_embedder.embed(truth, SAMPLE_RATE)
    emb_gen = audio_embedder.embed(gen, pipe.sample_rate)
    result: dict[str, Any] = {
        "clips": len(keys),
        "steps": steps,
        "guidance_scale": guidance_scale,
        "seconds": seconds,
        "embedder": audio_embedder.name,
        "fad": fad(emb_truth, emb_gen),
        "kl_db_spectrum_paper": kl_db_spectrum_paper(truth, gen),
        "ibsc_art_gen": None,
        "ibsc_gt_gen": None,
        "ibsc_note": "not computed: no ImageBind audio tower given (--imagebind-audio)",
    }
    if imagebind_audio is not None:
        result.update(_imagebind_scores(bundle, imagebind_audio, images, truth, gen, device))
    (run / "eval.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


def _imagebind_scores(bundle, weights, images, truth, generated, device) -> dict[str, Any]:
    import torch

    from engine.engines.diffusion.imagebind_audio import audio_clips, load_audio_tower

    from .metrics import imagebind_score

    tower = load_audio_tower(weights).to(device)

    def embed(waves):
        with torch.no_grad():
            return torch.stack([tower(audio_clips(w)[None].to(device))[0] for w in waves]).cpu().numpy()

    gen = embed(generated)
    out: dict[str, Any] = {
        "ibsc_gt_gen": imagebind_score(embed(truth), gen),
        "ibsc_note": "ImageBind audio tower",
    }
    if bundle.encoder_kind == "imagebind":
        out["ibsc_art_gen"] = imagebind_score(bundle.encoder.encode(images).float().cpu().numpy(), gen)
    else:
        out["ibsc_note"] += "; IBSc(art, gen) needs an ImageBind vision encoder (the bundle's is CLIP)"
    return out
