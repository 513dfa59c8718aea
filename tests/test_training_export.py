"""Precompute (resumable, broken files skipped) and export: the exported bundle loads and generates."""

from __future__ import annotations

import json
import shutil

import pytest

torch = pytest.importorskip("torch")

import diffusion_helpers as helpers
import training_helpers as data_helpers
from click.testing import CliRunner

from art2mus.cli import main


@pytest.mark.slow
def test_prepare_skips_broken_files_shards_and_resumes(tmp_path):
    from safetensors.torch import load_file

    from training.prepare import prepare

    data = data_helpers.prepared_data()
    index = json.loads((data / "index.json").read_text())
    assert index["kept"] == 16 and sorted(index["skipped"]) == ["broken-audio", "broken-image"]
    assert "audio unreadable" in index["skipped"]["broken-audio"]
    assert "image unreadable" in index["skipped"]["broken-image"]
    shard = load_file(str(data / index["shards"][0]["file"]))
    assert tuple(shard["latent_mean"].shape[1:]) == (8, 32, 16)  # 1.28 s → 128 mel frames → 32
    assert shard["image_embeds"].shape[1] == 1024 and (shard["latent_std"] > 0).all()
    # resume: copy, drop one shard and the index, run again: only that shard is recomputed
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    (copy / index["shards"][1]["file"]).unlink()
    (copy / "index.json").unlink()
    report = prepare(
        data_helpers.pairs_csv(),
        helpers.tiny_bundle("imagebind"),
        copy,
        shard_size=8,
        batch=8,  # as the first run: a different batch size rounds the VAE's convolutions differently
        seconds=data_helpers.SECONDS,
        val_count=4,
        progress=False,
    )
    assert report.shards_done_before == len(index["shards"]) - 1 and report.kept == 16
    again = json.loads((copy / "index.json").read_text())
    assert [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in index["shards"]]


@pytest.mark.slow
def test_exported_bundle_is_checked_and_generates(tmp_path):
    import soundfile as sf

    data = data_helpers.prepared_data()
    model = helpers.tiny_bundle("imagebind")
    run = tmp_path / "run"
    runner = CliRunner()
    r = runner.invoke(
        main,
        [
            "train",
            "run",
            "--data",
            str(data),
            "--model",
            str(model),
            "--out",
            str(run),
            "--max-steps",
            "4",
            "--batch-size",
            "2",
            "--val-every",
            "2",
            "--log-every",
            "1",
            "--quiet",
        ],
    )
    assert r.exit_code == 0, r.output
    bundle = tmp_path / "bundle"
    r = runner.invoke(main, ["train", "export", str(run), "--out", str(bundle)])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["models", "check", str(bundle)])
    assert r.exit_code == 0, r.output
    manifest = json.loads((bundle / "manifest.json").read_text())
    training = manifest["training"]
    assert training["config"]["max_steps"] == 4 and training["metrics"]["val_step"] == 4
    assert len(training["data_hash"]) == 64 and "training run" in manifest["components"]["aligner"]["source"]
    # the trained aligner is the one in the bundle
    from engine.engines.diffusion.bundle import load_bundle

    loaded = load_bundle(bundle)
    state = torch.load(run / "checkpoint" / "state.pt", weights_only=False)["aligner"]
    for key, value in loaded.aligner.state_dict().items():
        assert torch.equal(value, state[key]), key
    # and `art2mus generate --engine art2mus --model BUNDLE` uses it
    config = tmp_path / "art2mus.toml"
    config.write_text("[engine]\nsteps = 2\n[diffusion]\nloop_crossfade_seconds = 1.0\n")
    painting = data_helpers.ROOT / "content" / "demo" / "the-night-cafe.png"
    r = runner.invoke(
        main,
        [
            "-c",
            str(config),
            "generate",
            "--engine",
            "art2mus",
            "--model",
            str(bundle),
            "--duration",
            "6",
            "--seed",
            "4",
            "--out",
            str(tmp_path / "out"),
            str(painting),
        ],
    )
    assert r.exit_code == 0, r.output
    audio, rate = sf.read(tmp_path / "out" / "the-night-cafe.wav")
    assert rate == 48000 and audio.shape == (6 * 48000, 2)
    # a second export into the same folder is refused
    r = runner.invoke(main, ["train", "export", str(run), "--out", str(bundle)])
    assert r.exit_code != 0 and "not empty" in r.output


@pytest.mark.slow
def test_init_builds_a_start_bundle_and_prepare_runs_from_the_command_line(tmp_path):
    from engine.engines.diffusion.encoders import make_tiny_encoder
    from engine.engines.diffusion.tiny_audioldm2 import save_tiny_snapshot
    from training.data import read_pairs, write_pairs

    save_tiny_snapshot(tmp_path / "audioldm2")
    make_tiny_encoder("imagebind", tmp_path / "encoder")
    runner = CliRunner()
    r = runner.invoke(
        main,
        [
            "train",
            "init",
            str(tmp_path / "start"),
            "--audioldm2",
            str(tmp_path / "audioldm2"),
            "--encoder",
            str(tmp_path / "encoder"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert runner.invoke(main, ["models", "check", str(tmp_path / "start")]).exit_code == 0
    config = json.loads((tmp_path / "start" / "aligner" / "config.json").read_text())
    assert config["num_tokens"] == 16 and config["input_dim"] == 1024  # the paper's ImageBind setting
    # three pairs of the test dataset, one of them broken
    source = data_helpers.pairs_csv()
    pairs = {p.key: p for p in read_pairs(source)}
    rows = [
        {"id": k, "image": str(pairs[k].image), "audio": str(pairs[k].audio), "style": "x"}
        for k in ("000", "001", "broken-audio")
    ]
    write_pairs(tmp_path / "pairs.csv", rows)
    r = runner.invoke(
        main,
        [
            "train",
            "prepare",
            "--pairs",
            str(tmp_path / "pairs.csv"),
            "--model",
            str(tmp_path / "start"),
            "--out",
            str(tmp_path / "prepared"),
            "--seconds",
            "1.28",
            "--val-count",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "2 pairs kept, 1 skipped" in r.output and "skipped broken-audio: audio unreadable" in r.output
    assert (tmp_path / "prepared" / "split" / "val.txt").read_text().count("\n") == 1
