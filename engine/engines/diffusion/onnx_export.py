"""The image side of Art2Mus as one ONNX graph: pixels → (aligner tokens, image embedding).

``export_image_conditioner`` traces the frozen vision encoder and the Image Aligner together
with torch's ONNX exporter (``torch.export`` based, opset 18, batch dimension dynamic) into a
folder:

    conditioner.onnx        the graph (weights in conditioner.onnx.data when the exporter
                            stores them outside, as it must past 2 GB: ImageBind-huge)
    conditioner.json        what the graph expects and gives: encoder kind, widths, the
                            preprocessing as plain numbers, opset

``OnnxImageConditioner`` runs that folder with onnxruntime — CUDA execution provider where
onnxruntime-gpu finds a GPU (the exhibition PC), CPU otherwise — and says which one runs
(``.provider`` and a log line). It needs numpy, Pillow and onnxruntime only, no torch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .checkpoints import CheckpointError, read_json, require_file
from .preprocessing import PreprocessSpec, preprocess

log = logging.getLogger(__name__)

ONNX_NAME = "conditioner.onnx"
META_NAME = "conditioner.json"
FORMAT_VERSION = 1
DEFAULT_OPSET = 18
INPUT_NAME = "pixel_values"
OUTPUT_NAMES = ("tokens", "image_embeds")


def _conditioner_module(encoder, aligner):
    import torch
    from torch import nn

    class ImageConditioner(nn.Module):
        """pixel_values (B, 3, S, S) → aligner tokens (B, N, 768) and the image embedding (B, dim)."""

        def __init__(self):
            super().__init__()
            self.encoder = encoder
            self.aligner = aligner

        def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            image_embeds = self.encoder.embed(pixel_values)
            return self.aligner(image_embeds), image_embeds

    return ImageConditioner().eval()


def export_image_conditioner(
    encoder,
    aligner,
    folder: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
) -> Path:
    """Export ``encoder`` (a ``VisionEncoder``) + ``aligner`` (an ``ImageAligner``) to ``folder``.

    The modules must be float32 (ONNX parity is defined in fp32). The folder appears whole or
    not at all: the export is written next to it and renamed into place.
    """
    import torch

    folder = Path(folder)
    if opset < 17:
        raise ValueError(f"opset {opset}: LayerNormalization needs opset 17 or newer")
    if encoder.dim != aligner.config.input_dim:
        raise ValueError(
            f"encoder {encoder.kind} gives {encoder.dim}-d embeddings but the aligner expects {aligner.config.input_dim}"
        )
    dtypes = {p.dtype for p in list(encoder.parameters()) + list(aligner.parameters())}
    if dtypes != {torch.float32}:
        raise ValueError(f"export needs float32 modules, found {sorted(str(d) for d in dtypes)}")
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder}: already exists (pass overwrite=True to replace it)")

    model = _conditioner_module(encoder, aligner)
    device = next(aligner.parameters()).device
    size = encoder.image_size
    # A batch of 2 as the example, so the exporter cannot specialise the batch dimension to 1.
    example = torch.zeros(2, 3, size, size, device=device)
    batch = torch.export.Dim("batch", min=1, max=4096)

    staging = folder.parent / f".{folder.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with torch.no_grad(), _quiet_exporter_logs():
            torch.onnx.export(
                model,
                (example,),
                str(staging / ONNX_NAME),
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                opset_version=opset,
                dynamic_shapes=({0: batch},),
                dynamo=True,
                external_data=True,
                verbose=False,
            )
        meta = {
            "format_version": FORMAT_VERSION,
            "encoder_kind": encoder.kind,
            "encoder_dim": int(encoder.dim),
            "image_size": int(size),
            "num_tokens": int(aligner.config.num_tokens),
            "token_dim": int(aligner.config.token_dim),
            "opset": opset,
            "input": INPUT_NAME,
            "outputs": list(OUTPUT_NAMES),
            "preprocess": encoder.preprocess_spec.to_dict(),
            "files": sorted(p.name for p in staging.iterdir()),
        }
        (staging / META_NAME).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log.info("exported %s encoder + aligner to %s (opset %d)", encoder.kind, folder, opset)
    return folder


@contextlib.contextmanager
def _quiet_exporter_logs():
    """The exporter's optimiser logs every pass at INFO; keep the installation's log readable."""
    loggers = [logging.getLogger(name) for name in ("onnx_ir", "onnxscript", "torch.onnx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def choose_providers(available: Sequence[str] | None = None) -> list[str]:
    """CUDA first where onnxruntime offers it (onnxruntime-gpu with a GPU), always CPU as fallback."""
    if available is None:
        import onnxruntime

        available = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxImageConditioner:
    """Runs an exported conditioner folder with onnxruntime: RGB images → aligner tokens."""

    def __init__(self, folder: str | Path, providers: Sequence[str] | None = None):
        import onnxruntime

        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise CheckpointError(f"{self.folder}: ONNX conditioner folder not found")
        meta_path = self.folder / META_NAME
        self.meta = read_json(meta_path, "ONNX conditioner description")
        if self.meta.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(
                f"{meta_path}: format_version {self.meta.get('format_version')!r} is not {FORMAT_VERSION}"
            )
        try:
            self.spec = PreprocessSpec.from_dict(self.meta["preprocess"])
            self.kind = str(self.meta["encoder_kind"])
            self.dim = int(self.meta["encoder_dim"])
            self.num_tokens = int(self.meta["num_tokens"])
            self.token_dim = int(self.meta["token_dim"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{meta_path}: incomplete or invalid: {exc}") from exc
        for name in self.meta.get("files", [ONNX_NAME]):
            require_file(self.folder / name, "part of the ONNX conditioner")

        model_path = self.folder / ONNX_NAME
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # onnxruntime's own warnings go to stderr, not our log
        try:
            self.session = onnxruntime.InferenceSession(
                str(model_path), sess_options=options, providers=list(providers or choose_providers())
            )
        except Exception as exc:
            raise CheckpointError(f"{model_path}: onnxruntime could not load it: {exc}") from exc
        self._check_signature(model_path)
        # onnxruntime drops a provider it cannot start (e.g. CUDA without a usable GPU) and
        # carries on with the next, so ask the session what it really runs on.
        self.provider = self.session.get_providers()[0]
        log.info("ONNX image conditioner %s (%s) runs on %s", model_path, self.kind, self.provider)

    def _check_signature(self, model_path: Path) -> None:
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = {o.name: o.shape for o in self.session.get_outputs()}
        if inputs != [INPUT_NAME] or set(outputs) != set(OUTPUT_NAMES):
            raise CheckpointError(
                f"{model_path}: inputs {inputs} / outputs {sorted(outputs)} are not a conditioner's"
            )
        expected = {"tokens": [self.num_tokens, self.token_dim], "image_embeds": [self.dim]}
        for name, shape in expected.items():
            if list(outputs[name][1:]) != shape:
                raise CheckpointError(
                    f"{model_path}: output {name} has shape {outputs[name]}, but {META_NAME} says (batch, {', '.join(map(str, shape))})"
                )

    def preprocess(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return preprocess(images, self.spec)

    def run(self, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (B, 3, S, S) float32 → (tokens (B, N, token_dim), image_embeds (B, dim))."""
        pixel_values = np.ascontiguousarray(pixel_values, dtype=np.float32)
        tokens, embeds = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: pixel_values})
        return tokens, embeds

    def __call__(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """RGB uint8 images → (tokens, image_embeds)."""
        return self.run(self.preprocess(images))
