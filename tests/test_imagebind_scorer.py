"""diffusion.scorer = "imagebind": the engine ranks its candidates by ImageBind image–audio similarity.

The checkpoint is a tiny random ImageBind saved in ``imagebind_huge.pth``'s key layout (vision,
audio and a text tensor the loader must ignore), read by the same code as the real file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import diffusion_helpers as helpers

from engine.engines.diffusion.imagebind_audio import (
    ImageBindAudio,
    ImageBindAudioConfig,
    audio_config_from_state_dict,
)
from engine.engines.diffusion.imagebind_vision import ImageBindVision, ImageBindVisionConfig

# Heads as imagebind_huge (vision 16, audio 12): the loader cannot read them from the shapes.
TINY_VISION = ImageBindVisionConfig(width=32, layers=1, heads=16, embed_dim=1024)
TINY_AUDIO = ImageBindAudioConfig(width=24, layers=2, heads=12, embed_dim=1024)


def save_tiny_imagebind(path: Path, *, audio: bool = True) -> Path:
    g = torch.Generator().manual_seed(0)
    state = dict(ImageBindVision(TINY_VISION).init_random(g).state_dict())
    if audio:
        state.update(ImageBindAudio(TINY_AUDIO).init_random(g).state_dict())
    state["modality_trunks.text.blocks.0.attn.in_proj_weight"] = torch.zeros(3, 1)
    torch.save(state, path)
    return path


def write_config(tmp_path: Path, collection: Path, diffusion: str) -> Path:
    config = tmp_path / "art2mus.toml"
    config.write_text(
        f"""
[collection]
path = "{collection}"
[store]
database = "{tmp_path / "store.db"}"
[engine]
name = "art2mus"
model = "{helpers.tiny_bundle("clip")}"
duration = 5.0
steps = 2
candidates = 3
batch_size = 3
[diffusion]
device = "cpu"
duration = 5.0
{diffusion}
"""
    )
    return config


def test_audio_config_is_read_back_from_the_huge_layout():
    with torch.device("meta"):
        state = ImageBindAudio().state_dict()
    assert audio_config_from_state_dict(state) == ImageBindAudioConfig()  # stride 10 found from 228 patches
    with torch.device("meta"):
        tiny = ImageBindAudio(TINY_AUDIO).state_dict()
    assert audio_config_from_state_dict(tiny, heads=12) == TINY_AUDIO


@pytest.mark.slow  # loads the tiny bundle and makes 3 clips
def test_configured_scorer_keeps_the_best_of_three(tmp_path, collection):
    from engine.catalog.scanner import scan_collection
    from engine.config import load_config
    from engine.engines.registry import create_engine
    from engine.store import Database
    from engine.store.clips import ClipStore
    from engine.worker import Worker

    save_tiny_imagebind(tmp_path / "imagebind_huge.pth")
    # a relative path is taken from the config file's folder, as every path in it
    config = load_config(
        write_config(
            tmp_path, collection, 'scorer = "imagebind"\nimagebind_checkpoint = "imagebind_huge.pth"'
        )
    )
    assert config.diffusion.imagebind_checkpoint == tmp_path / "imagebind_huge.pth"
    engine = create_engine("art2mus", config)
    assert engine.params()["scorer"] == "imagebind-similarity"
    # the tiny bundle's encoder is CLIP, so the image side is the checkpoint's vision tower
    assert engine.scorer.vision.kind == "imagebind" and engine.scorer.vision is not engine.bundle.encoder

    db = Database(config.store.database)
    scan_collection(db, collection, config.catalog)
    worker = Worker(db, engine, config)
    worker.enqueue_missing()
    result = worker.run_once()
    assert result is not None and result.clips == 3
    store = ClipStore(db)
    clips = list(store.clips_for_image(store.get(store.playable_for(result.artwork_id).id).image_hash))
    scores = [c.score for c in clips]
    assert len(clips) == 3 and all(s is not None and -1 <= s <= 1 for s in scores)
    assert len(set(scores)) == 3  # cosines of three different clips
    chosen = [c for c in clips if c.chosen]
    assert len(chosen) == 1 and chosen[0].score == max(scores)
    db.close()


@pytest.mark.slow  # each case loads the tiny bundle before the checkpoint is read
@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ('scorer = "imagebind"', r"needs diffusion\.imagebind_checkpoint"),
        (
            'scorer = "imagebind"\nimagebind_checkpoint = "absent.pth"',
            r"diffusion\.imagebind_checkpoint: .*absent\.pth: missing",
        ),
        (
            'scorer = "imagebind"\nimagebind_checkpoint = "vision-only.pth"',
            r"vision-only\.pth: no ImageBind audio tensors",
        ),
        (
            'scorer = "imagebind"\nimagebind_checkpoint = "garbage.pth"',
            r"garbage\.pth: not a readable PyTorch checkpoint",
        ),
    ],
)
def test_a_missing_or_wrong_checkpoint_is_refused_naming_key_and_file(
    tmp_path, collection, setting, expected
):
    from engine.config import load_config
    from engine.engines.registry import EngineLoadError, create_engine

    save_tiny_imagebind(tmp_path / "vision-only.pth", audio=False)
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    config = load_config(write_config(tmp_path, collection, setting))
    with pytest.raises(EngineLoadError, match=expected):
        create_engine("art2mus", config)


def test_an_unknown_scorer_is_refused_by_the_config(tmp_path, collection):
    from engine.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"diffusion\.scorer.*'none', 'imagebind'"):
        load_config(write_config(tmp_path, collection, 'scorer = "clap"'))
