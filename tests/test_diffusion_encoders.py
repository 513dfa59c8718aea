"""Vision encoders: real folder formats, preprocessing against the reference processor,
ImageBind's key layout and arithmetic, checkpoint conversion, refusal of bad folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from safetensors.torch import save_file
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPImageProcessorPil,
    CLIPModel,
    CLIPTextConfig,
    CLIPVisionConfig,
)

from engine.engines.diffusion.checkpoints import CheckpointError
from engine.engines.diffusion.encoders import (
    ENCODER_CONFIG,
    WEIGHTS,
    convert_clip_checkpoint,
    convert_imagebind_checkpoint,
    load_vision_encoder,
    make_tiny_encoder,
)
from engine.engines.diffusion.imagebind_vision import (
    ImageBindVision,
    ImageBindVisionConfig,
)
from engine.engines.diffusion.preprocessing import CLIP_SPEC, preprocess

DEMO = Path(__file__).resolve().parent.parent / "content" / "demo"


def painting(name: str) -> np.ndarray:
    return np.asarray(Image.open(DEMO / f"{name}.png").convert("RGB"))


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("encoders")
    return {kind: make_tiny_encoder(kind, root / kind) for kind in ("clip", "imagebind")}


# --- folder format and loading -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "dim", "files"),
    [
        ("clip", 512, {ENCODER_CONFIG, "config.json", WEIGHTS, "preprocessor_config.json"}),
        ("imagebind", 1024, {ENCODER_CONFIG, WEIGHTS}),
    ],
)
def test_tiny_encoder_roundtrip(tiny_folders, kind, dim, files):
    folder = tiny_folders[kind]
    assert files <= {p.name for p in folder.iterdir()}
    assert json.loads((folder / ENCODER_CONFIG).read_text())["kind"] == kind
    encoder = load_vision_encoder(folder)
    assert (encoder.kind, encoder.dim) == (kind, dim)
    images = [painting("arched-hallway"), painting("the-night-cafe")]
    pixels = encoder.preprocess(images)
    assert pixels.shape == (2, 3, 224, 224) and pixels.dtype == torch.float32
    embeds = encoder.encode(images)
    assert embeds.shape == (2, dim)
    assert not torch.allclose(embeds[0], embeds[1])
    again = load_vision_encoder(folder).encode(images)
    torch.testing.assert_close(embeds, again, rtol=0, atol=0)
    assert not any(p.requires_grad for p in encoder.parameters())


def test_imagebind_embeddings_are_l2_normalised(tiny_folders):
    embeds = load_vision_encoder(tiny_folders["imagebind"]).encode([painting("church-at-auvers")])
    torch.testing.assert_close(embeds.norm(dim=-1), torch.ones(1))


# --- preprocessing -------------------------------------------------------------------------


def test_clip_preprocessing_equals_transformers_clip_image_processor(tiny_folders):
    encoder = load_vision_encoder(tiny_folders["clip"])
    image = painting("cafe-terrace-at-night")
    reference = CLIPImageProcessor()(images=[image], return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(encoder.preprocess([image]).numpy(), reference, rtol=0, atol=1e-6)
    # The torch-free path used by the ONNX conditioner gives the same pixels.
    np.testing.assert_allclose(preprocess([image], encoder.preprocess_spec), reference, rtol=0, atol=1e-6)
    assert encoder.preprocess_spec == CLIP_SPEC


def test_imagebind_preprocessing_equals_clip_processor_where_crops_agree(tiny_folders):
    """arched-hallway resizes to 224×297: floor(73/2) = round(73/2) = 36, so both crops agree."""
    encoder = load_vision_encoder(tiny_folders["imagebind"])
    image = painting("arched-hallway")
    reference = CLIPImageProcessor()(images=[image], return_tensors="np")["pixel_values"]
    np.testing.assert_allclose(encoder.preprocess([image]).numpy(), reference, rtol=0, atol=1e-6)


def test_imagebind_crop_offset_rounds_like_torchvision(tiny_folders):
    """cafe-terrace resizes to 224×279 (w×h): torchvision's CenterCrop starts at round(27.5) = 28,
    transformers' at 27. ImageBind's pixels are the processor's uncropped resize, cut at 28."""
    encoder = load_vision_encoder(tiny_folders["imagebind"])
    image = painting("cafe-terrace-at-night")
    resized = CLIPImageProcessor(do_center_crop=False)(images=[image], return_tensors="np")["pixel_values"]
    assert resized.shape[-2:] == (279, 224)
    ours = encoder.preprocess([image]).numpy()
    np.testing.assert_allclose(ours, resized[:, :, 28:252, :], rtol=0, atol=1e-6)
    assert not np.allclose(ours, resized[:, :, 27:251, :])


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 4), np.uint8),
        np.zeros((10, 10, 3), np.float32),
    ],
)
def test_preprocess_refuses_non_rgb_uint8_naming_the_index(tiny_folders, bad):
    encoder = load_vision_encoder(tiny_folders["imagebind"])
    with pytest.raises(ValueError, match="image 1: expected an RGB uint8"):
        encoder.preprocess([painting("arched-hallway"), bad])


# --- ImageBind: key layout and arithmetic --------------------------------------------------


def test_imagebind_huge_key_layout_and_shapes():
    with torch.device("meta"):
        model = ImageBindVision(ImageBindVisionConfig())
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["modality_preprocessors.vision.cls_token"] == (1, 1, 1280)
    assert shapes["modality_preprocessors.vision.rgbt_stem.proj.1.weight"] == (1280, 3, 2, 14, 14)
    assert shapes["modality_preprocessors.vision.pos_embedding_helper.pos_embed"] == (1, 257, 1280)
    assert shapes["modality_trunks.vision.pre_transformer_layer.0.weight"] == (1280,)
    assert shapes["modality_trunks.vision.blocks.31.attn.in_proj_weight"] == (3840, 1280)
    assert shapes["modality_trunks.vision.blocks.31.attn.out_proj.weight"] == (1280, 1280)
    assert shapes["modality_trunks.vision.blocks.0.mlp.fc1.weight"] == (5120, 1280)
    assert shapes["modality_heads.vision.0.weight"] == (1280,)
    assert shapes["modality_heads.vision.2.weight"] == (1024, 1280)
    assert "modality_heads.vision.2.bias" not in shapes
    assert "modality_trunks.vision.blocks.32.norm_1.weight" not in shapes
    # 3 stem/embedding tensors + ln_pre (2) + 32 blocks × 12 tensors + head (3)
    assert len(shapes) == 3 + 2 + 32 * 12 + 3
    params = sum(int(np.prod(s)) for s in shapes.values())
    assert 630e6 < params < 635e6  # ImageBind-huge's vision tower: ~632M parameters


def reference_imagebind_vision(
    state: dict, config: ImageBindVisionConfig, pixels: torch.Tensor
) -> torch.Tensor:
    """ImageBind's vision forward written out from torch primitives and its own layer classes
    (nn.MultiheadAttention, sequence-first, like ImageBind's SimpleTransformer), independent of
    the module under test."""
    p = "modality_preprocessors.vision."
    t = "modality_trunks.vision."
    h = "modality_heads.vision."
    video = pixels.unsqueeze(2).repeat(1, 1, config.num_frames, 1, 1)  # PadIm2Video(repeat)
    conv = state[p + "rgbt_stem.proj.1.weight"]
    x = torch.nn.functional.conv3d(video, conv, stride=conv.shape[2:])
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([state[p + "cls_token"].expand(x.shape[0], -1, -1), x], dim=1)
    x = x + state[p + "pos_embedding_helper.pos_embed"]

    def ln(y, k):
        return torch.nn.functional.layer_norm(
            y, (config.width,), state[k + ".weight"], state[k + ".bias"], 1e-6
        )

    x = ln(x, t + "pre_transformer_layer.0").transpose(0, 1)  # "b l d -> l b d"
    for i in range(config.layers):
        b = f"{t}blocks.{i}."
        mha = torch.nn.MultiheadAttention(config.width, config.heads, bias=True)
        mha.load_state_dict(
            {
                "in_proj_weight": state[b + "attn.in_proj_weight"],
                "in_proj_bias": state[b + "attn.in_proj_bias"],
                "out_proj.weight": state[b + "attn.out_proj.weight"],
                "out_proj.bias": state[b + "attn.out_proj.bias"],
            }
        )
        y = ln(x, b + "norm_1")
        x = x + mha(y, y, y, need_weights=False)[0]
        y = ln(x, b + "norm_2")
        y = torch.nn.functional.linear(y, state[b + "mlp.fc1.weight"], state[b + "mlp.fc1.bias"])
        y = torch.nn.functional.gelu(y)
        x = x + torch.nn.functional.linear(y, state[b + "mlp.fc2.weight"], state[b + "mlp.fc2.bias"])
    x = x.transpose(0, 1)  # "l b d -> b l d"
    x = ln(x, h + "0")[:, 0]
    x = torch.nn.functional.linear(x, state[h + "2.weight"])
    return torch.nn.functional.normalize(x, dim=-1)


def test_imagebind_tower_matches_reference_arithmetic():
    config = ImageBindVisionConfig(width=48, layers=3, heads=4, embed_dim=1024)
    model = ImageBindVision(config).init_random(torch.Generator().manual_seed(3)).eval()
    pixels = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ours = model(pixels)
        reference = reference_imagebind_vision(model.state_dict(), config, pixels)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)


# --- conversion from the upstream formats --------------------------------------------------


def test_convert_imagebind_pth_keeps_only_the_vision_tower(tmp_path: Path):
    config = ImageBindVisionConfig(width=32, layers=2, heads=4, embed_dim=1024)
    model = ImageBindVision(config).init_random(torch.Generator().manual_seed(1)).eval()
    whole = dict(model.state_dict())
    # Other modalities of the real checkpoint, which the converter must drop.
    whole["modality_trunks.text.blocks.0.attn.in_proj_weight"] = torch.randn(96, 32)
    whole["modality_preprocessors.audio.cls_token"] = torch.randn(1, 1, 32)
    whole["modality_postprocessors.text.1.log_logit_scale"] = torch.tensor(2.6)
    pth = tmp_path / "imagebind_huge.pth"
    torch.save(whole, pth)

    out = convert_imagebind_checkpoint(pth, tmp_path / "encoder", heads=4)
    saved = json.loads((out / ENCODER_CONFIG).read_text())
    assert saved["kind"] == "imagebind" and saved["config"]["width"] == 32 and saved["config"]["layers"] == 2
    encoder = load_vision_encoder(out)
    assert not any(".text." in k or ".audio." in k for k in encoder.model.state_dict())
    pixels = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(encoder.embed(pixels), model(pixels), rtol=0, atol=0)


def test_convert_clip_from_a_full_transformers_clip_folder(tmp_path: Path):
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=CLIPTextConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=99
        ).to_dict(),
        vision_config=CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, patch_size=32
        ).to_dict(),
        projection_dim=512,
    )
    clip = CLIPModel(config).eval()
    source = tmp_path / "clip-vit-base-patch32"
    clip.save_pretrained(source)
    CLIPImageProcessorPil().save_pretrained(source)

    encoder = load_vision_encoder(convert_clip_checkpoint(source, tmp_path / "encoder"))
    assert encoder.dim == 512
    images = [painting("langlois-bridge-at-arles")]
    pixels = encoder.preprocess(images)
    with torch.no_grad():
        expected = clip.get_image_features(pixel_values=pixels)
        expected = getattr(expected, "pooler_output", expected)
        torch.testing.assert_close(encoder.embed(pixels), expected, rtol=1e-5, atol=1e-6)


# --- refusal of bad folders ----------------------------------------------------------------


def test_missing_folder_and_config_are_named(tmp_path: Path):
    with pytest.raises(CheckpointError, match="encoder folder not found"):
        load_vision_encoder(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=f"{ENCODER_CONFIG}: missing"):
        load_vision_encoder(tmp_path / "empty")


def test_unknown_kind_is_named(tmp_path: Path):
    (tmp_path / ENCODER_CONFIG).write_text('{"kind": "dino"}')
    with pytest.raises(CheckpointError, match=f"{ENCODER_CONFIG}: kind 'dino'"):
        load_vision_encoder(tmp_path)


@pytest.mark.parametrize("kind", ["clip", "imagebind"])
def test_missing_weights_are_named(tmp_path: Path, kind):
    folder = make_tiny_encoder(kind, tmp_path / kind)
    (folder / WEIGHTS).unlink()
    with pytest.raises(CheckpointError, match=f"{WEIGHTS}: missing"):
        load_vision_encoder(folder)


def test_imagebind_weights_of_the_wrong_width_are_refused(tmp_path: Path):
    folder = make_tiny_encoder("imagebind", tmp_path / "ib")
    config = json.loads((folder / ENCODER_CONFIG).read_text())
    config["config"]["width"] = 64
    (folder / ENCODER_CONFIG).write_text(json.dumps(config))
    with pytest.raises(
        CheckpointError,
        match=rf"{WEIGHTS}: does not match its config: .*vision.0.bias has shape \(32,\), expected \(64,\).*more",
    ):
        load_vision_encoder(folder)


def test_imagebind_weights_with_a_missing_block_are_refused(tmp_path: Path):
    folder = make_tiny_encoder("imagebind", tmp_path / "ib")
    from safetensors.torch import load_file

    state = load_file(folder / WEIGHTS)
    del state["modality_trunks.vision.blocks.1.mlp.fc2.weight"]
    save_file(state, str(folder / WEIGHTS))
    with pytest.raises(
        CheckpointError, match=r"missing tensors modality_trunks.vision.blocks.1.mlp.fc2.weight"
    ):
        load_vision_encoder(folder)


def test_bad_imagebind_sizes_name_the_config(tmp_path: Path):
    folder = make_tiny_encoder("imagebind", tmp_path / "ib")
    config = json.loads((folder / ENCODER_CONFIG).read_text())
    config["config"]["heads"] = 5
    (folder / ENCODER_CONFIG).write_text(json.dumps(config))
    with pytest.raises(
        CheckpointError, match=f"{ENCODER_CONFIG}: bad ImageBind config: width 32 is not divisible by heads 5"
    ):
        load_vision_encoder(folder)


def test_clip_weights_of_another_size_are_refused(tmp_path: Path):
    folder = make_tiny_encoder("clip", tmp_path / "clip")
    config = json.loads((folder / "config.json").read_text())
    config["projection_dim"] = 768
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        CheckpointError, match=rf"{WEIGHTS}: does not match its config: .*visual_projection.weight"
    ):
        load_vision_encoder(folder)


def test_unreadable_or_foreign_pth_is_refused(tmp_path: Path):
    junk = tmp_path / "imagebind_huge.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"imagebind_huge.pth: not a readable PyTorch checkpoint"):
        convert_imagebind_checkpoint(junk, tmp_path / "out")
    audio_only = tmp_path / "audio_only.pth"
    torch.save({"modality_trunks.audio.blocks.0.norm_1.weight": torch.ones(4)}, audio_only)
    with pytest.raises(CheckpointError, match=r"audio_only.pth: no ImageBind vision tensors"):
        convert_imagebind_checkpoint(audio_only, tmp_path / "out")
    with pytest.raises(CheckpointError, match=r"absent.pth: missing"):
        convert_imagebind_checkpoint(tmp_path / "absent.pth", tmp_path / "out")


def test_clip_processor_that_does_not_fit_the_model_is_refused(tmp_path: Path):
    folder = make_tiny_encoder("clip", tmp_path / "clip")
    config = json.loads((folder / "preprocessor_config.json").read_text())
    config["crop_size"] = {"height": 336, "width": 336}
    (folder / "preprocessor_config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"preprocessor_config.json: crop_size .*336.* image_size 224"):
        load_vision_encoder(folder)
