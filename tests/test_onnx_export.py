"""ONNX export of encoder + aligner: parity with PyTorch in fp32, provider choice, bad folders."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from engine.engines.diffusion.aligner import make_aligner
from engine.engines.diffusion.checkpoints import CheckpointError
from engine.engines.diffusion.encoders import load_vision_encoder, make_tiny_encoder
from engine.engines.diffusion.onnx_export import (
    META_NAME,
    ONNX_NAME,
    OnnxImageConditioner,
    choose_providers,
    export_image_conditioner,
)

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "content" / "demo"
TOLERANCE = 1e-4


def paintings(*names: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(DEMO / f"{n}.png").convert("RGB")) for n in names]


@pytest.fixture(scope="module", params=["clip", "imagebind"])
def exported(request, tmp_path_factory):
    kind = request.param
    root = tmp_path_factory.mktemp(f"onnx-{kind}")
    encoder = load_vision_encoder(make_tiny_encoder(kind, root / "encoder"))
    torch.manual_seed(1)
    aligner = make_aligner(kind).eval()
    folder = export_image_conditioner(encoder, aligner, root / "conditioner")
    return kind, encoder, aligner, folder


@pytest.mark.slow
def test_export_writes_the_graph_and_its_description(exported):
    kind, encoder, aligner, folder = exported
    meta = json.loads((folder / META_NAME).read_text())
    assert meta["encoder_kind"] == kind
    assert (meta["encoder_dim"], meta["num_tokens"], meta["token_dim"]) == (
        encoder.dim,
        aligner.config.num_tokens,
        768,
    )
    assert meta["preprocess"]["crop_rounding"] == ("round" if kind == "imagebind" else "floor")
    for name in meta["files"]:
        assert (folder / name).is_file()
    model = onnx.load(str(folder / ONNX_NAME), load_external_data=False)
    opsets = {o.domain: o.version for o in model.opset_import}
    assert opsets[""] >= 17
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value  # symbolic batch, not a fixed size
    assert not list(folder.parent.glob(".conditioner.partial-*"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "names",
    [
        ("arched-hallway",),
        ("cafe-terrace-at-night", "the-night-cafe", "harvest-at-la-crau"),
    ],
)
def test_onnxruntime_matches_pytorch_within_1e_4(exported, names):
    _kind, encoder, aligner, folder = exported
    images = paintings(*names)
    conditioner = OnnxImageConditioner(folder)
    tokens, embeds = conditioner(images)
    with torch.no_grad():
        ref_embeds = encoder.encode(images)
        ref_tokens = aligner(ref_embeds)
    assert tokens.shape == (len(images), aligner.config.num_tokens, 768)
    assert embeds.shape == (len(images), encoder.dim)
    assert np.abs(tokens - ref_tokens.numpy()).max() <= TOLERANCE
    assert np.abs(embeds - ref_embeds.numpy()).max() <= TOLERANCE
    # Same pixels as the PyTorch path: the preprocessing went along in conditioner.json.
    np.testing.assert_allclose(
        conditioner.preprocess(images), encoder.preprocess(images).numpy(), rtol=0, atol=1e-6
    )


@pytest.mark.slow
def test_provider_is_reported_in_property_and_log(exported, caplog):
    *_, folder = exported
    with caplog.at_level(logging.INFO, logger="engine.engines.diffusion.onnx_export"):
        conditioner = OnnxImageConditioner(folder)
    assert conditioner.provider in ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert f"runs on {conditioner.provider}" in caplog.text
    assert str(folder / ONNX_NAME) in caplog.text


def test_cuda_is_preferred_when_onnxruntime_offers_it():
    assert choose_providers(["CUDAExecutionProvider", "CPUExecutionProvider"]) == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert choose_providers(["AzureExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]


@pytest.mark.slow
def test_conditioner_runs_without_torch(exported):
    """The exhibition PC can run the image side from numpy, Pillow and onnxruntime alone."""
    *_, folder = exported
    code = (
        "import sys, numpy as np\n"
        "from engine.engines.diffusion.onnx_export import OnnxImageConditioner\n"
        f"c = OnnxImageConditioner({str(folder)!r})\n"
        "tokens, embeds = c([np.full((300, 400, 3), 128, np.uint8)])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "print(tokens.shape, c.provider)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "CPUExecutionProvider" in result.stdout or "CUDAExecutionProvider" in result.stdout


# --- refusals ------------------------------------------------------------------------------


@pytest.fixture
def tiny_parts(tmp_path):
    encoder = load_vision_encoder(make_tiny_encoder("imagebind", tmp_path / "encoder"))
    return encoder, make_aligner("imagebind", num_tokens=2).eval()


def test_export_refuses_mismatched_aligner_and_existing_folder(tmp_path, tiny_parts):
    encoder, _ = tiny_parts
    with pytest.raises(ValueError, match="gives 1024-d embeddings but the aligner expects 512"):
        export_image_conditioner(encoder, make_aligner("clip"), tmp_path / "out")
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError, match="taken: already exists"):
        export_image_conditioner(encoder, tiny_parts[1], tmp_path / "taken")


def test_failed_export_leaves_nothing_behind(tmp_path, tiny_parts, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("exporter failed")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(RuntimeError, match="exporter failed"):
        export_image_conditioner(*tiny_parts, tmp_path / "out")
    assert list(tmp_path.iterdir()) == [tmp_path / "encoder"]


@pytest.fixture
def copy_of_export(tmp_path, tiny_parts):
    return export_image_conditioner(*tiny_parts, tmp_path / "conditioner")


@pytest.mark.slow
def test_missing_folder_and_files_are_named(tmp_path, copy_of_export):
    with pytest.raises(CheckpointError, match="ONNX conditioner folder not found"):
        OnnxImageConditioner(tmp_path / "absent")
    data = copy_of_export / f"{ONNX_NAME}.data"
    assert data.is_file()  # weights are stored beside the graph (needed past 2 GB: ImageBind-huge)
    data.unlink()
    with pytest.raises(CheckpointError, match=f"{ONNX_NAME}.data: missing"):
        OnnxImageConditioner(copy_of_export)
    (copy_of_export / META_NAME).unlink()
    with pytest.raises(CheckpointError, match=f"{META_NAME}: missing"):
        OnnxImageConditioner(copy_of_export)


@pytest.mark.slow
def test_corrupt_graph_is_named(copy_of_export):
    (copy_of_export / ONNX_NAME).write_bytes(b"\x08garbage")
    with pytest.raises(CheckpointError, match=f"{ONNX_NAME}: onnxruntime could not load it"):
        OnnxImageConditioner(copy_of_export)


@pytest.mark.slow
def test_description_that_disagrees_with_the_graph_is_refused(copy_of_export):
    meta = json.loads((copy_of_export / META_NAME).read_text())
    meta["num_tokens"] = 16
    (copy_of_export / META_NAME).write_text(json.dumps(meta))
    with pytest.raises(
        CheckpointError,
        match=r"output tokens has shape .*2, 768\], but conditioner.json says \(batch, 16, 768\)",
    ):
        OnnxImageConditioner(copy_of_export)


# --- the commands ---------------------------------------------------------------------------


@pytest.mark.slow
def test_export_and_run_commands(tmp_path):
    from click.testing import CliRunner

    from engine.engines.diffusion.parts_cli import model_parts

    runner = CliRunner()
    result = runner.invoke(model_parts, ["make-tiny-encoder", "imagebind", str(tmp_path / "encoder")])
    assert result.exit_code == 0, result.output
    make_aligner("imagebind", num_tokens=3).save_pretrained(tmp_path / "aligner")
    result = runner.invoke(
        model_parts,
        [
            "export-onnx",
            "--encoder",
            str(tmp_path / "encoder"),
            "--aligner",
            str(tmp_path / "aligner"),
            str(tmp_path / "onnx"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "vs PyTorch on 4 demo paintings: max |diff|" in result.output
    result = runner.invoke(
        model_parts, ["run-onnx", str(tmp_path / "onnx"), str(DEMO / "the-night-cafe.png")]
    )
    assert result.exit_code == 0, result.output
    assert (
        "provider: CPUExecutionProvider" in result.output
        or "provider: CUDAExecutionProvider" in result.output
    )
    assert "tokens (1, 3, 768)" in result.output
    # A bad folder is a clear one-line error, not a traceback.
    result = runner.invoke(model_parts, ["run-onnx", str(tmp_path / "encoder")])
    assert result.exit_code == 1 and "conditioner.json: missing" in result.output
