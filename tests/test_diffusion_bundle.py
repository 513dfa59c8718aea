"""Model bundles: make-tiny, build from local folders, check, and refusal of bad bundles."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import diffusion_helpers as helpers
from click.testing import CliRunner

from art2mus.cli import main
from engine.engines.diffusion import architectures as arch
from engine.engines.diffusion.bundle import (
    CONDITIONING,
    MANIFEST,
    BundleError,
    check_bundle,
    load_bundle,
    model_version,
    sha256_file,
)


def run_cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def tree_hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()
    }


# --------------------------------------------------------------------------- good bundles


def test_make_tiny_and_check_cli(tmp_path):
    out = tmp_path / "tiny"
    result = run_cli("models", "make-tiny", str(out), "--encoder", "imagebind", "--seed", "3")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / MANIFEST).read_text())
    # Every file but the manifest is listed with its sha256; the model version hashes the manifest.
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {MANIFEST}
    assert set(manifest["files"]) == files
    assert all(manifest["files"][rel] == sha256_file(out / rel) for rel in files)
    version = hashlib.sha256((out / MANIFEST).read_bytes()).hexdigest()
    assert version in result.output and model_version(out) == version
    assert manifest["components"]["encoder"]["kind"] == "imagebind"
    assert manifest["components"]["aligner"]["num_tokens"] == 16
    assert set(manifest["libraries"]) >= {"torch", "diffusers", "transformers"}

    check = run_cli("models", "check", str(out))
    assert check.exit_code == 0, check.output
    assert "OK" in check.output and version in check.output


def test_tiny_bundle_has_real_audioldm2_structure():
    bundle = load_bundle(helpers.tiny_bundle())
    assert bundle.vocoder.config.sampling_rate == 16000
    assert int(torch.tensor(bundle.vocoder.config.upsample_rates).prod()) == arch.HOP_LENGTH
    assert bundle.vae.config.latent_channels == bundle.unet.config.in_channels == 8
    assert bundle.vae.config.scaling_factor == pytest.approx(arch.VAE_SCALING_FACTOR)
    c = bundle.conditioning
    assert c["negative_generated_prompt_embeds"].shape == (1, 8, bundle.language_model.config.n_embd)
    assert c["prompt_embeds"].shape[-1] == bundle.unet.config.cross_attention_dim[0][2]
    # The prompt is longer than "Low quality": the negative is padded, and its mask says so.
    assert c["attention_mask"].sum() > c["negative_attention_mask"].sum()
    assert c["prompt_embeds"].shape == c["negative_prompt_embeds"].shape


@pytest.mark.slow
def test_build_from_local_folders_stores_pipeline_conditioning(tmp_path):
    from diffusers import AudioLDM2Pipeline

    from engine.engines.diffusion.aligner import ImageAligner
    from engine.engines.diffusion.encoders import load_vision_encoder, make_tiny_encoder
    from engine.engines.diffusion.tiny_audioldm2 import save_tiny_snapshot

    snapshot = save_tiny_snapshot(tmp_path / "audioldm2-music", seed=5)
    make_tiny_encoder("clip", tmp_path / "encoder")
    dim = load_vision_encoder(tmp_path / "encoder").dim
    ImageAligner(input_dim=dim, embed_dim=64, num_tokens=6, token_dim=arch.TINY.lm_dim).save_pretrained(
        tmp_path / "aligner"
    )
    inputs = {name: tree_hashes(tmp_path / name) for name in ("audioldm2-music", "encoder", "aligner")}

    out = tmp_path / "bundle"
    result = run_cli(
        "models",
        "build",
        str(out),
        "--audioldm2",
        str(snapshot),
        "--encoder",
        str(tmp_path / "encoder"),
        "--aligner",
        str(tmp_path / "aligner"),
    )
    assert result.exit_code == 0, result.output
    assert check_bundle(out) == []
    # The curators' / installers' input folders are only read.
    assert inputs == {name: tree_hashes(tmp_path / name) for name in inputs}
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]

    # The stored conditioning is exactly what diffusers' pipeline computes for the prompts
    # (its GPT-2 loop needs the LM-head class, which the reference pipeline loads).
    from safetensors.torch import load_file
    from transformers import GPT2LMHeadModel

    pipe = AudioLDM2Pipeline.from_pretrained(snapshot, local_files_only=True)
    pipe.language_model = GPT2LMHeadModel.from_pretrained(snapshot / "language_model")
    with torch.no_grad():
        embeds, mask, generated = pipe.encode_prompt(
            arch.PROMPT, "cpu", 1, True, negative_prompt=arch.NEGATIVE_PROMPT
        )
    stored = load_file(str(out / CONDITIONING))
    torch.testing.assert_close(stored["prompt_embeds"], embeds[1:])
    torch.testing.assert_close(stored["negative_prompt_embeds"], embeds[:1])
    assert torch.equal(stored["attention_mask"], mask[1:])
    assert torch.equal(stored["negative_attention_mask"], mask[:1])
    torch.testing.assert_close(stored["negative_generated_prompt_embeds"], generated[:1])

    # A second build never overwrites a bundle.
    again = CliRunner().invoke(
        main,
        [
            "models",
            "build",
            str(out),
            "--audioldm2",
            str(snapshot),
            "--encoder",
            str(tmp_path / "encoder"),
            "--aligner",
            str(tmp_path / "aligner"),
        ],
    )
    assert again.exit_code != 0 and "already exists" in again.output


def test_build_refuses_aligner_that_does_not_fit_the_encoder(tmp_path):
    from engine.engines.diffusion.aligner import ImageAligner
    from engine.engines.diffusion.encoders import make_tiny_encoder
    from engine.engines.diffusion.tiny_audioldm2 import save_tiny_snapshot

    snapshot = save_tiny_snapshot(tmp_path / "audioldm2")
    make_tiny_encoder("clip", tmp_path / "encoder")
    ImageAligner(input_dim=77, embed_dim=64, num_tokens=6, token_dim=arch.TINY.lm_dim).save_pretrained(
        tmp_path / "aligner"
    )
    result = CliRunner().invoke(
        main,
        [
            "models",
            "build",
            str(tmp_path / "out"),
            "--audioldm2",
            str(snapshot),
            "--encoder",
            str(tmp_path / "encoder"),
            "--aligner",
            str(tmp_path / "aligner"),
        ],
    )
    assert result.exit_code != 0
    assert "aligner/config.json: input_dim 77" in result.output
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- bad bundles


def refused(folder: Path) -> str:
    """The load error and the `models check` output for a bad bundle (both must refuse)."""
    with pytest.raises(BundleError) as info:
        load_bundle(folder)
    result = CliRunner().invoke(main, ["models", "check", str(folder)])
    assert result.exit_code != 0
    return str(info.value) + "\n" + result.output


def test_missing_file_is_named(tmp_path):
    folder = helpers.copy_bundle(tmp_path)
    (folder / "vocoder" / "model.safetensors").unlink()
    text = refused(folder)
    assert "vocoder/model.safetensors: missing" in text


def test_corrupt_file_is_a_sha_mismatch(tmp_path):
    folder = helpers.copy_bundle(tmp_path)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte deep in the tensor data
    weights.write_bytes(bytes(data))
    text = refused(folder)
    assert "unet/diffusion_pytorch_model.safetensors: sha256 mismatch" in text


def test_wrong_conditioning_shape_is_named(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = helpers.copy_bundle(tmp_path)
    tensors = load_file(str(folder / CONDITIONING))
    tensors["prompt_embeds"] = torch.zeros(1, tensors["prompt_embeds"].shape[1], 1024)  # real T5 width
    tensors["negative_prompt_embeds"] = torch.zeros_like(tensors["prompt_embeds"])
    save_file(tensors, str(folder / CONDITIONING))
    helpers.rehash(folder, CONDITIONING)  # hashes agree: only the shape check can catch it
    text = refused(folder)
    assert f"{CONDITIONING}: 'prompt_embeds' has shape (1, 8, 1024); expected (1, 8, 48)" in text


def test_wrong_weight_shape_is_named(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = helpers.copy_bundle(tmp_path)
    rel = "vae/diffusion_pytorch_model.safetensors"
    tensors = load_file(str(folder / rel))
    key = next(k for k, v in tensors.items() if v.ndim == 4)
    tensors[key] = torch.zeros(3, 3, 3, 3)
    save_file(tensors, str(folder / rel))
    helpers.rehash(folder, rel)
    assert check_bundle(folder, load=False) == []  # files and configs agree ...
    text = refused(folder)  # ... but the weights do not fit the VAE
    assert "vae/ cannot be loaded" in text


def test_edited_manifest_is_refused(tmp_path):
    folder = helpers.copy_bundle(tmp_path)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["components"]["encoder"]["dim"] = 1024  # claims an ImageBind encoder
    (folder / MANIFEST).write_text(json.dumps(manifest))
    text = refused(folder)
    assert "aligner/config.json: input_dim 512 does not match the encoder's embedding size (1024)" in text

    manifest["components"]["encoder"]["dim"] = 512
    manifest["files"]["scheduler/scheduler_config.json"] = "0" * 64
    (folder / MANIFEST).write_text(json.dumps(manifest))
    assert "scheduler/scheduler_config.json: sha256 mismatch" in refused(folder)

    (folder / MANIFEST).write_text("{ not json")
    assert f"{MANIFEST} is not valid JSON" in refused(folder)


def test_unlisted_file_and_not_a_bundle(tmp_path):
    folder = helpers.copy_bundle(tmp_path)
    (folder / "unet" / "extra.bin").write_bytes(b"x")
    assert "unet/extra.bin: not listed in manifest.json" in refused(folder)

    empty = tmp_path / "empty"
    empty.mkdir()
    assert "manifest.json is missing; this is not an Art2Mus model bundle" in refused(empty)
    assert "model bundle folder not found" in refused(tmp_path / "nowhere")


def test_engine_load_failure_names_the_file(tmp_path):
    from engine.config import default_config
    from engine.engines.registry import EngineLoadError, create_engine

    folder = helpers.copy_bundle(tmp_path)
    (folder / "aligner" / "config.json").write_text("{}")
    config = default_config()
    config.engine.name, config.engine.model = "art2mus", folder
    with pytest.raises(EngineLoadError) as info:
        create_engine("art2mus", config)
    assert "cannot load the art2mus engine" in str(info.value)
    assert "aligner/config.json: sha256 mismatch" in str(info.value)

    config.engine.model = None
    with pytest.raises(EngineLoadError, match=r"no model bundle configured: set engine.model"):
        create_engine("art2mus", config)
