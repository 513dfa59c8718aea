"""The Image Aligner: shapes, the diffusers folder format, and refusal of bad checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from engine.engines.diffusion.aligner import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    ImageAligner,
    make_aligner,
)
from engine.engines.diffusion.checkpoints import CheckpointError


def test_imagebind_aligner_maps_1024_to_16_tokens_without_upscaler():
    aligner = make_aligner("imagebind")
    assert aligner.upscaler is None
    out = aligner(torch.randn(3, 1024))
    assert out.shape == (3, 16, 768)


def test_clip_aligner_upscales_512_and_maps_to_6_tokens():
    aligner = make_aligner("clip")
    assert aligner.upscaler is not None
    assert aligner.upscaler.fc1.in_features == 512 and aligner.upscaler.fc2.out_features == 1024
    out = aligner(torch.randn(2, 512))
    assert out.shape == (2, 6, 768)


def test_tokens_differ_per_image_and_per_token():
    aligner = make_aligner("imagebind", num_tokens=4)
    out = aligner(torch.randn(2, 1024))
    assert not torch.allclose(out[0], out[1])
    assert not torch.allclose(out[0, 0], out[0, 1])


def test_wrong_input_width_is_refused():
    with pytest.raises(ValueError, match=r"\(batch, 512\)"):
        make_aligner("clip")(torch.randn(2, 1024))


def test_invalid_config_value_is_named():
    with pytest.raises(ValueError, match="num_tokens=0"):
        ImageAligner(num_tokens=0)


def test_save_and_load_roundtrip_in_diffusers_format(tmp_path: Path):
    aligner = make_aligner("clip", num_tokens=3).eval()
    aligner.save_pretrained(tmp_path)
    assert (tmp_path / CONFIG_NAME).is_file() and (tmp_path / WEIGHTS_NAME).is_file()
    config = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert config["_class_name"] == "ImageAligner"
    assert (config["input_dim"], config["embed_dim"], config["num_tokens"], config["token_dim"]) == (
        512,
        1024,
        3,
        768,
    )

    loaded = ImageAligner.from_pretrained(tmp_path)
    x = torch.randn(4, 512)
    with torch.no_grad():
        assert torch.equal(aligner(x), loaded(x))


def _saved(tmp_path: Path, **kwargs) -> Path:
    folder = tmp_path / "aligner"
    ImageAligner(**kwargs).save_pretrained(folder)
    return folder


def test_missing_folder_is_refused(tmp_path: Path):
    with pytest.raises(CheckpointError, match="aligner folder not found"):
        ImageAligner.from_pretrained(tmp_path / "nowhere")


def test_missing_weights_file_is_named(tmp_path: Path):
    folder = _saved(tmp_path, num_tokens=2)
    (folder / WEIGHTS_NAME).unlink()
    with pytest.raises(CheckpointError, match=f"{WEIGHTS_NAME}: missing"):
        ImageAligner.from_pretrained(folder)


def test_missing_config_is_named(tmp_path: Path):
    folder = _saved(tmp_path, num_tokens=2)
    (folder / CONFIG_NAME).unlink()
    with pytest.raises(CheckpointError, match=f"{CONFIG_NAME}: missing"):
        ImageAligner.from_pretrained(folder)


def test_config_that_does_not_match_the_weights_names_file_and_tensor(tmp_path: Path):
    folder = _saved(tmp_path, num_tokens=2)
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["num_tokens"] = 16
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as err:
        ImageAligner.from_pretrained(folder)
    message = str(err.value)
    assert WEIGHTS_NAME in message and "projection.weight" in message and "(1536, 1024)" in message


def test_weights_of_a_clip_aligner_under_an_imagebind_config_are_refused(tmp_path: Path):
    folder = _saved(tmp_path, input_dim=512, num_tokens=2)
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["input_dim"] = 1024
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unexpected tensors upscaler"):
        ImageAligner.from_pretrained(folder)


def test_corrupt_weights_file_is_named(tmp_path: Path):
    folder = _saved(tmp_path, num_tokens=2)
    (folder / WEIGHTS_NAME).write_bytes(b"\x00\x01 not safetensors")
    with pytest.raises(CheckpointError, match=f"{WEIGHTS_NAME}: not a readable safetensors file"):
        ImageAligner.from_pretrained(folder)


def test_truncated_weights_file_is_named(tmp_path: Path):
    folder = _saved(tmp_path, num_tokens=2)
    data = (folder / WEIGHTS_NAME).read_bytes()
    (folder / WEIGHTS_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=WEIGHTS_NAME):
        ImageAligner.from_pretrained(folder)


def test_bad_config_value_names_config_file(tmp_path: Path):
    folder = _saved(tmp_path, num_tokens=2)
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["token_dim"] = -1
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=f"{CONFIG_NAME}: .*token_dim=-1"):
        ImageAligner.from_pretrained(folder)


@pytest.mark.slow
def test_package_and_torch_free_modules_import_without_torch():
    """The kiosk imports engine.* without torch; only the diffusion engine pulls it in."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import engine.engines.diffusion, engine.engines.diffusion.checkpoints\n"
        "import engine.engines.diffusion.preprocessing, engine.engines.diffusion.onnx_export\n"
        "import engine.engines.diffusion.parts_cli\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
