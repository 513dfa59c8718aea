"""Export a run's aligner into a model bundle the engine loads, and the starting bundle.

``export_run`` copies the run's base bundle (the frozen parts it trained against) with the
trained ``aligner/`` in place of the old one, and writes a manifest that adds a ``training``
record (the config, the data hash, the final metrics, the run's step) to the base manifest's
components and conditioning. The bundle is written beside ``out`` and renamed at the end,
as ``build_bundle`` does, so an interrupted export leaves nothing half-written.

``init_bundle`` is the start for a fresh training: ``build_bundle`` needs an aligner folder,
and before any training there is none, so it builds one freshly initialised with the paper's
token count for the encoder's kind.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

from engine.atomic_writes import is_taken, written_in_place
from engine.engines.diffusion.bundle import MANIFEST, BundleError, read_manifest, write_manifest


class ExportError(ValueError):
    pass


def _last_metrics(run: Path) -> dict:
    path = run / "metrics.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return {}
    last = rows[-1]
    vals = [r for r in rows if r.get("val_loss")]
    out = {"step": int(last["step"]), "loss": float(last["loss"])}
    if vals:
        out["val_loss"] = float(vals[-1]["val_loss"])
        out["val_step"] = int(vals[-1]["step"])
    return out


def export_run(
    run: str | os.PathLike, out: str | os.PathLike, *, model: str | os.PathLike | None = None
) -> str:
    """Write the bundle; returns its model version."""
    from engine.engines.diffusion.aligner import ImageAligner

    run = Path(run)
    out = Path(out).expanduser().resolve()
    info_path = run / "run.json"
    if not info_path.is_file() or not (run / "aligner").is_dir():
        raise ExportError(
            f"{run}: not a finished training run (run.json and aligner/ are made by `train run`)"
        )
    info = json.loads(info_path.read_text())
    base = Path(model or info["model"])
    manifest = read_manifest(base)
    ImageAligner.from_pretrained(run / "aligner")  # refuses a corrupt or mismatched aligner
    if is_taken(out):
        raise ExportError(f"{out}: already exists and is not empty; choose a new folder")
    with written_in_place(out) as work:
        shutil.copytree(base, work, dirs_exist_ok=True, ignore=shutil.ignore_patterns(MANIFEST, "aligner"))
        shutil.copytree(run / "aligner", work / "aligner")
        components = manifest["components"]
        components["aligner"] = {**components["aligner"], "source": f"training run {run.name}"}
        record = {
            "components": components,
            "conditioning": manifest["conditioning"],
            "training": {
                "config": info["config"],
                "data_hash": info["data_hash"],
                "base_model_version": info["model_version"],
                "metrics": _last_metrics(run),
                "processes": info.get("processes"),
            },
        }
        version = write_manifest(work, record)
    return version


def init_bundle(
    out: str | os.PathLike,
    *,
    audioldm2: str | os.PathLike,
    encoder: str | os.PathLike,
    num_tokens: int | None = None,
    seed: int = 0,
) -> str:
    """A bundle with AudioLDM 2's parts and a freshly initialised aligner (training's start)."""
    import json as _json

    import torch

    from engine.engines.diffusion.aligner import PAPER_NUM_TOKENS, ImageAligner
    from engine.engines.diffusion.bundle import build_bundle
    from engine.engines.diffusion.encoders import load_vision_encoder

    vision = load_vision_encoder(Path(encoder))
    lm_config = _json.loads((Path(audioldm2) / "language_model" / "config.json").read_text())
    with tempfile.TemporaryDirectory(prefix="art2mus-init-aligner-") as tmp:
        torch.manual_seed(seed)
        ImageAligner(
            input_dim=vision.dim,
            embed_dim=1024,
            num_tokens=num_tokens or PAPER_NUM_TOKENS[vision.kind],
            token_dim=int(lm_config["n_embd"]),
        ).save_pretrained(Path(tmp) / "aligner")
        try:
            return build_bundle(out, audioldm2=audioldm2, encoder=encoder, aligner=Path(tmp) / "aligner")
        except BundleError as exc:
            raise ExportError(str(exc)) from None
